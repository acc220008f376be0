//! Waymark's native checkpoint layout.
//!
//! * `waymark_checkpoints`: one row per `(thread, namespace, id)` with the parent, the
//!   metadata (verbatim JSON, so key order survives), `run_id` lifted out of the metadata for
//!   `delete_for_runs`, and `body`: the checkpoint without its versioned channel values,
//!   msgpack-encoded.
//! * `waymark_checkpoint_payloads`: channel values content-addressed by `(thread, namespace,
//!   channel, version text)`, written once. A msgpack array that extends an earlier payload of
//!   the same channel (a `messages` list growing by appends) is stored as the appended elements
//!   plus `base_version` (see `checkpoints::payload`); the foreign key keeps a base alive while a delta needs it.
//! * `waymark_checkpoint_writes`: pending writes keyed like LangGraph's.
//!
//! Large columns come last in each table: SQLite then reads the small ones (a payload's
//! `base_version`) from the record header without walking a big value's overflow pages.

super::migration!(
    "m0002_checkpoints",
    "
CREATE TABLE IF NOT EXISTS waymark_checkpoints (
    thread_id {key} NOT NULL,
    ns {key} NOT NULL,
    checkpoint_id {key} NOT NULL,
    parent_id {key} NULL,
    run_id {key} NULL,
    v BIGINT NOT NULL,
    metadata {jsonx} NOT NULL,
    body {bytes} NOT NULL,
    PRIMARY KEY (thread_id, ns, checkpoint_id)
);
CREATE INDEX IF NOT EXISTS waymark_checkpoints_thread_id ON waymark_checkpoints (thread_id, checkpoint_id);
CREATE INDEX IF NOT EXISTS waymark_checkpoints_run ON waymark_checkpoints (run_id) WHERE run_id IS NOT NULL;
CREATE TABLE IF NOT EXISTS waymark_checkpoint_payloads (
    thread_id {key} NOT NULL,
    ns {key} NOT NULL,
    channel {key} NOT NULL,
    version {key} NOT NULL,
    type_tag TEXT NOT NULL,
    base_version {key} NULL,
    depth BIGINT NOT NULL DEFAULT 0,
    data {bytes} NOT NULL,
    PRIMARY KEY (thread_id, ns, channel, version),
    FOREIGN KEY (thread_id, ns, channel, base_version)
        REFERENCES waymark_checkpoint_payloads (thread_id, ns, channel, version)
);
CREATE INDEX IF NOT EXISTS waymark_checkpoint_payloads_base
    ON waymark_checkpoint_payloads (thread_id, ns, channel, base_version)
    WHERE base_version IS NOT NULL;
CREATE TABLE IF NOT EXISTS waymark_checkpoint_writes (
    thread_id {key} NOT NULL,
    ns {key} NOT NULL,
    checkpoint_id {key} NOT NULL,
    task_id {key} NOT NULL,
    idx BIGINT NOT NULL,
    task_path {key} NOT NULL,
    channel {key} NOT NULL,
    type_tag TEXT NOT NULL,
    data {bytes} NOT NULL,
    PRIMARY KEY (thread_id, ns, checkpoint_id, task_id, idx)
)
",
    &["CREATE INDEX IF NOT EXISTS waymark_checkpoints_metadata ON waymark_checkpoints \
       USING GIN ((metadata::jsonb) jsonb_path_ops)"],
    &[
        "waymark_checkpoint_writes",
        "waymark_checkpoint_payloads",
        "waymark_checkpoints"
    ]
);
