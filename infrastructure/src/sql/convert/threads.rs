//! Sessions and threads.

use waymark_domain::session::{CheckpointPolicy, Session};
use waymark_domain::thread::Thread;

use crate::sql::db::Row;
use crate::sql::error::{SqlError, SqlResult};

/// The columns [`session`] reads.
pub(crate) const SESSION_COLUMNS: &str = "id, owner, title, metadata, status, \
    max_checkpoints_per_thread, retention_seconds, exempt_snapshots, created_at, updated_at";

/// A `waymark_sessions` row.
pub(crate) fn session(r: &Row<'_>, op: &'static str) -> SqlResult<Session> {
    let max = r
        .opt_i64("max_checkpoints_per_thread")?
        .map(|n| u32::try_from(n).map_err(|_| SqlError::corrupt(op, "max_checkpoints_per_thread")))
        .transpose()?;
    Ok(Session {
        id: r.id("id")?,
        owner: r.opt_id("owner")?,
        title: r.opt_text("title")?,
        metadata: r.json_object("metadata")?,
        status: r.id("status")?,
        checkpoint_policy: CheckpointPolicy {
            max_checkpoints_per_thread: max,
            retention_seconds: r.opt_i64("retention_seconds")?,
            exempt_snapshots: r.bool("exempt_snapshots")?,
        },
        created_at: r.ts("created_at")?,
        updated_at: r.ts("updated_at")?,
    })
}

/// The columns [`thread`] reads.
pub(crate) const THREAD_COLUMNS: &str = "id, session_id, owner, assistant_id, display_name, \
    status, metadata, created_at, updated_at";

/// A `waymark_threads` row.
pub(crate) fn thread(r: &Row<'_>) -> SqlResult<Thread> {
    Ok(Thread {
        id: r.id("id")?,
        session_id: r.opt_id("session_id")?,
        owner: r.opt_id("owner")?,
        assistant_id: r.opt_text("assistant_id")?,
        display_name: r.opt_text("display_name")?,
        status: r.id("status")?,
        metadata: r.json_object("metadata")?,
        created_at: r.ts("created_at")?,
        updated_at: r.ts("updated_at")?,
    })
}
