//! Checking that a copied thread holds what its source holds.

use waymark_domain::checkpoint::{
    ChannelVersion, ChannelVersions, CheckpointQuery, CheckpointRepository, CheckpointTuple,
};
use waymark_domain::{CheckpointId, CheckpointNamespace, JsonObject, ThreadId};

use crate::error::AppResult;

/// What comparing one thread's checkpoints at the source and the target found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CopyCheck {
    /// Both hold the same checkpoints and writes.
    Identical {
        /// Checkpoints compared.
        checkpoints: usize,
    },
    /// The two hold a different number of checkpoints.
    CountDiffers {
        /// Checkpoints at the source.
        source: usize,
        /// Checkpoints at the target.
        target: usize,
    },
    /// A checkpoint differs (or exists on one side only).
    Differs {
        /// Its namespace.
        namespace: CheckpointNamespace,
        /// Its id.
        checkpoint_id: CheckpointId,
    },
}

/// Compares the checkpoints and writes `source` and `target` hold for `thread`: ids, parent,
/// format version, `ts`, every value's tag and bytes, versions, metadata and the writes with
/// their task, path and index. Key order never matters (jsonb does not keep it), and a
/// top-level `"writes"` metadata key is ignored: LangGraph's PostgreSQL layout never stores it
/// (compat §1.3).
pub async fn verify_thread(
    source: &dyn CheckpointRepository,
    target: &dyn CheckpointRepository,
    thread: &ThreadId,
) -> AppResult<CopyCheck> {
    let query = CheckpointQuery::thread(thread.clone());
    let mut a = source.list(&query).await?;
    let mut b = target.list(&query).await?;
    if a.len() != b.len() {
        return Ok(CopyCheck::CountDiffers {
            source: a.len(),
            target: b.len(),
        });
    }
    let key = |t: &CheckpointTuple| (t.namespace.clone(), t.checkpoint.id.clone());
    a.sort_by_key(key);
    b.sort_by_key(key);
    for (x, y) in a.iter().zip(&b) {
        if !same_tuple(x, y) {
            return Ok(CopyCheck::Differs {
                namespace: x.namespace.clone(),
                checkpoint_id: x.checkpoint.id.clone(),
            });
        }
    }
    Ok(CopyCheck::Identical {
        checkpoints: a.len(),
    })
}

/// Whether two tuples hold the same data in the sense of [`verify_thread`].
fn same_tuple(a: &CheckpointTuple, b: &CheckpointTuple) -> bool {
    let (x, y) = (&a.checkpoint, &b.checkpoint);
    a.namespace == b.namespace
        && x.id == y.id
        && a.parent_id == b.parent_id
        && x.v == y.v
        && x.ts == y.ts
        && x.channel_values == y.channel_values
        && same_versions(&x.channel_versions, &y.channel_versions)
        && comparable_metadata(&a.metadata.0) == comparable_metadata(&b.metadata.0)
        && sorted_writes(a) == sorted_writes(b)
}

/// Versions equal by channel, whatever their order; a float equals itself even when NaN.
fn same_versions(a: &ChannelVersions, b: &ChannelVersions) -> bool {
    a.len() == b.len()
        && a.iter().all(|(channel, v)| {
            b.get(channel).is_some_and(|w| match (v, w) {
                (ChannelVersion::Float(f), ChannelVersion::Float(g)) => f.to_bits() == g.to_bits(),
                _ => v == w,
            })
        })
}

/// The metadata without the `"writes"` key. Object equality ignores key order.
fn comparable_metadata(metadata: &JsonObject) -> JsonObject {
    let mut m = metadata.clone();
    m.shift_remove("writes");
    m
}

/// One write as compared: (task, path, index, channel, tag, bytes).
type WriteKey<'a> = (&'a str, &'a str, i64, &'a str, &'a str, &'a [u8]);

/// The writes of a tuple, sorted.
fn sorted_writes(t: &CheckpointTuple) -> Vec<WriteKey<'_>> {
    let mut writes: Vec<_> = t
        .pending_writes
        .iter()
        .map(|w| {
            (
                w.task_id.as_str(),
                w.task_path.as_str(),
                w.idx,
                w.channel.as_str(),
                w.value.type_tag(),
                w.value.bytes(),
            )
        })
        .collect();
    writes.sort();
    writes
}
