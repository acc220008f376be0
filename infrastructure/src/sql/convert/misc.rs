//! Branches, snapshots, feedback, token usage, chat streams and items.

use waymark_domain::branch::{Branch, Snapshot};
use waymark_domain::chat_stream::ChatStreamRecord;
use waymark_domain::feedback::{Feedback, Rating};
use waymark_domain::kv::{Item, ItemNamespace};
use waymark_domain::{
    BranchId, CheckpointId, CheckpointNamespace, FeedbackId, Name, SnapshotId, UserId,
};

use crate::sql::db::Row;
use crate::sql::error::{SqlError, SqlResult};

fn uuid_col<T>(
    r: &Row<'_>,
    col: &str,
    op: &'static str,
    parse: fn(&str) -> waymark_domain::DomainResult<T>,
) -> SqlResult<T> {
    let s = r.text(col)?;
    parse(&s).map_err(|e| SqlError::corrupt(op, format!("column {col}: {e}")))
}

fn name(r: &Row<'_>, col: &str, op: &'static str) -> SqlResult<Name> {
    Name::parse(r.text(col)?).map_err(|e| SqlError::corrupt(op, format!("column {col}: {e}")))
}

fn namespace(r: &Row<'_>, col: &str) -> SqlResult<CheckpointNamespace> {
    r.id(col)
}

/// The columns [`branch`] reads.
pub(crate) const BRANCH_COLUMNS: &str = "id, name, source_thread_id, source_ns, \
    source_checkpoint_id, thread_id, metadata, created_at";

/// A `waymark_branches` row.
pub(crate) fn branch(r: &Row<'_>, op: &'static str) -> SqlResult<Branch> {
    Ok(Branch {
        id: uuid_col(r, "id", op, BranchId::parse)?,
        name: name(r, "name", op)?,
        source_thread_id: r.id("source_thread_id")?,
        source_namespace: namespace(r, "source_ns")?,
        source_checkpoint_id: r.id::<CheckpointId>("source_checkpoint_id")?,
        thread_id: r.id("thread_id")?,
        metadata: r.json_object("metadata")?,
        created_at: r.ts("created_at")?,
    })
}

/// The columns [`snapshot`] reads.
pub(crate) const SNAPSHOT_COLUMNS: &str =
    "id, thread_id, ns, checkpoint_id, name, description, kind, metadata, created_at";

/// A `waymark_snapshots` row.
pub(crate) fn snapshot(r: &Row<'_>, op: &'static str) -> SqlResult<Snapshot> {
    Ok(Snapshot {
        id: uuid_col(r, "id", op, SnapshotId::parse)?,
        thread_id: r.id("thread_id")?,
        namespace: namespace(r, "ns")?,
        checkpoint_id: r.id("checkpoint_id")?,
        name: name(r, "name", op)?,
        description: r.opt_text("description")?,
        kind: r.id("kind")?,
        metadata: r.json_object("metadata")?,
        created_at: r.ts("created_at")?,
    })
}

/// The columns [`feedback`] reads.
pub(crate) const FEEDBACK_COLUMNS: &str = "id, thread_id, run_id, user_id, message_id, \
    CAST(rating AS BIGINT) AS rating, comment, created_at, updated_at";

/// A `waymark_feedback` row; the empty `user_id` is the anonymous author.
pub(crate) fn feedback(r: &Row<'_>, op: &'static str) -> SqlResult<Feedback> {
    let user = r.text("user_id")?;
    let user_id = if user.is_empty() {
        None
    } else {
        Some(UserId::parse(user).map_err(|e| SqlError::corrupt(op, e))?)
    };
    Ok(Feedback {
        id: uuid_col(r, "id", op, FeedbackId::parse)?,
        thread_id: r.id("thread_id")?,
        run_id: r.id("run_id")?,
        user_id,
        message_id: r.opt_text("message_id")?,
        rating: Rating::new(r.i64("rating")?).map_err(|e| SqlError::corrupt(op, e))?,
        comment: r.opt_text("comment")?,
        created_at: r.ts("created_at")?,
        updated_at: r.ts("updated_at")?,
    })
}

/// The columns [`chat_stream`] reads.
pub(crate) const CHAT_COLUMNS: &str = "thread_id, user_id, messages, ts, created_at";

/// A `waymark_chat_streams` row.
pub(crate) fn chat_stream(r: &Row<'_>, op: &'static str) -> SqlResult<ChatStreamRecord> {
    let frames: Vec<String> = serde_json::from_value(r.json("messages")?)
        .map_err(|e| SqlError::corrupt(op, format!("messages: {e}")))?;
    Ok(ChatStreamRecord {
        thread_id: r.id("thread_id")?,
        user_id: r.opt_id("user_id")?,
        frames,
        ts: r.ts("ts")?,
        created_at: r.ts("created_at")?,
    })
}

/// The columns [`item`] reads.
pub(crate) const ITEM_COLUMNS: &str =
    "namespace, item_key, value, created_at, updated_at, expires_at";

/// A `waymark_items` row.
pub(crate) fn item(r: &Row<'_>, op: &'static str) -> SqlResult<Item> {
    Ok(Item {
        namespace: ItemNamespace::from_joined(&r.text("namespace")?)
            .map_err(|e| SqlError::corrupt(op, e))?,
        key: r.id("item_key")?,
        value: r.json_object("value")?,
        created_at: r.ts("created_at")?,
        updated_at: r.ts("updated_at")?,
        expires_at: r.opt_ts("expires_at")?,
    })
}
