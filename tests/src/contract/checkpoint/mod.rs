//! The checkpoint contract: LangGraph's saver semantics (spec `langgraph-compat.md` §1, §4.4-4.9,
//! §5, §6.3) as [`CheckpointRepository`](waymark_domain::checkpoint::CheckpointRepository)
//! cases.
//!
//! The first 81 cases carry the names of the 81 checks of langgraph-checkpoint-conformance 0.0.2
//! (§7.3) without their `test_` prefix and assert the same intent through the Rust port. The
//! cases after them cover what the suite does not: id ordering, namespaces, write indices and
//! the upsert-vs-ignore rule, payload fidelity, atomic multi-thread puts, targeted deletes,
//! summaries, copy-on-read and the backend's filter rule.
//!
//! One module per section: the conformance checks by port method (`put` .. `prune`), then the
//! cases beyond the suite. Every `pub async fn` case is re-exported here and must be listed in
//! [`checkpoint_contract!`](crate::checkpoint_contract); `tests/tests/contract_cases_listed.rs`
//! fails, naming the case, when one is not.

mod bulk_and_targeted;
mod copy_thread;
mod delete_for_runs;
mod delete_thread;
mod filters;
mod get_tuple;
mod helpers;
mod ids_and_namespaces;
mod list;
mod payload_fidelity;
mod prune;
mod prune_rules;
mod put;
mod put_writes;
mod write_rules;

pub use bulk_and_targeted::*;
pub use copy_thread::*;
pub use delete_for_runs::*;
pub use delete_thread::*;
pub use filters::*;
pub use get_tuple::*;
pub use ids_and_namespaces::*;
pub use list::*;
pub use payload_fidelity::*;
pub use prune::*;
pub use prune_rules::*;
pub use put::*;
pub use put_writes::*;
pub use write_rules::*;

// -- case list (every `pub async fn` above, in order) ----------------------------------------

/// Runs every checkpoint case against `$factory` (an absolute path to an
/// `async fn() -> Option<TestBackend>`): one `#[tokio::test]` per case in a module `checkpoint`.
#[macro_export]
macro_rules! checkpoint_contract {
    ($factory:path) => {
        mod checkpoint {
            $crate::__contract_cases!(
                $factory,
                checkpoint,
                [
                    put_returns_config,
                    put_roundtrip,
                    put_preserves_channel_values,
                    put_preserves_channel_versions,
                    put_preserves_versions_seen,
                    put_preserves_metadata,
                    put_root_namespace,
                    put_child_namespace,
                    put_default_namespace,
                    put_multiple_checkpoints_same_thread,
                    put_multiple_threads_isolated,
                    put_parent_config,
                    put_incremental_channel_update,
                    put_new_channel_added,
                    put_channel_removed,
                    put_preserves_run_id,
                    put_preserves_versions_seen_values,
                    put_writes_basic,
                    put_writes_multiple_writes_same_task,
                    put_writes_multiple_tasks,
                    put_writes_preserves_task_id,
                    put_writes_preserves_channel_and_value,
                    put_writes_task_path,
                    put_writes_idempotent,
                    put_writes_special_channels,
                    put_writes_across_namespaces,
                    put_writes_cleared_on_next_checkpoint,
                    get_tuple_nonexistent_returns_none,
                    get_tuple_latest_when_no_checkpoint_id,
                    get_tuple_specific_checkpoint_id,
                    get_tuple_config_structure,
                    get_tuple_checkpoint_fields,
                    get_tuple_metadata,
                    get_tuple_parent_config,
                    get_tuple_pending_writes,
                    get_tuple_respects_namespace,
                    get_tuple_nonexistent_checkpoint_id,
                    list_all,
                    list_by_thread,
                    list_by_namespace,
                    list_ordering,
                    list_metadata_filter_single_key,
                    list_metadata_filter_step,
                    list_metadata_filter_multiple_keys,
                    list_metadata_filter_no_match,
                    list_metadata_custom_keys,
                    list_before,
                    list_limit,
                    list_limit_plus_before,
                    list_combined_thread_and_filter,
                    list_empty_result,
                    list_includes_pending_writes,
                    list_multiple_namespaces,
                    delete_thread_removes_checkpoints,
                    delete_thread_removes_writes,
                    delete_thread_removes_all_namespaces,
                    delete_thread_preserves_other_threads,
                    delete_thread_nonexistent_noop,
                    delete_for_runs_single,
                    delete_for_runs_multiple,
                    delete_for_runs_preserves_other_runs,
                    delete_for_runs_removes_writes,
                    delete_for_runs_empty_list_noop,
                    delete_for_runs_nonexistent_noop,
                    delete_for_runs_across_namespaces,
                    copy_thread_basic,
                    copy_thread_all_checkpoints,
                    copy_thread_preserves_metadata,
                    copy_thread_preserves_namespaces,
                    copy_thread_preserves_writes,
                    copy_thread_preserves_ordering,
                    copy_thread_source_unchanged,
                    copy_thread_nonexistent_source,
                    prune_keep_latest_single_thread,
                    prune_keep_latest_multiple_threads,
                    prune_keep_latest_across_namespaces,
                    prune_keep_latest_preserves_writes,
                    prune_delete_all,
                    prune_preserves_other_threads,
                    prune_empty_list_noop,
                    prune_nonexistent_noop,
                    ordering_is_by_id_text_not_insertion,
                    latest_is_greatest_id_not_last_written,
                    before_is_strict_text_comparison,
                    get_tuple_latest_is_per_namespace,
                    list_without_namespace_spans_namespaces,
                    list_by_checkpoint_id,
                    list_without_thread_spans_threads,
                    special_write_indices,
                    pending_writes_sort_by_path_task_idx,
                    all_special_call_upserts,
                    mixed_call_is_insert_or_ignore,
                    resent_accumulated_writes_add_only_new,
                    put_writes_empty_batch_is_noop,
                    checkpoint_round_trips_whole,
                    channel_version_types_are_preserved,
                    any_format_version_is_kept,
                    payload_bytes_round_trip_exactly,
                    large_values_round_trip_exactly,
                    write_values_keep_opaque_tags,
                    opaque_channel_values_round_trip_or_are_refused,
                    null_write_is_null_tag_with_no_bytes,
                    null_channel_value_reads_back_as_nil,
                    put_replaces_existing_key,
                    metadata_round_trips_verbatim,
                    put_many_stores_every_entry,
                    put_many_empty_is_noop,
                    put_many_is_all_or_nothing_for_readers,
                    delete_checkpoints_removes_listed_with_writes,
                    delete_checkpoints_keeps_survivor_parents,
                    delete_for_runs_keeps_survivor_parents,
                    summary_counts_the_thread,
                    returned_tuples_are_copies,
                    copy_thread_preserves_parents_and_write_rows,
                    copy_thread_leaves_existing_target_rows,
                    prune_keep_latest_clears_dangling_parent,
                    prune_drops_subgraphs_of_pruned_roots,
                    prune_keeps_legacy_parent_with_pregel_tasks,
                    filter_flat_scalars_agree_everywhere,
                    filter_true_versus_one,
                    filter_null_versus_missing,
                    filter_nested_object_subset,
                    filter_list_containment,
                    filter_numbers_compare_by_value,
                    filter_dotted_key,
                    filter_key_outside_the_sqlite_charset,
                    filter_with_nul_follows_the_reported_rule,
                ]
            );
        }
    };
}
