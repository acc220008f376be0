//! Run events.

use waymark_domain::run_event::RunEvent;

use crate::sql::db::Row;
use crate::sql::error::SqlResult;

/// The columns [`event`] reads.
pub(crate) const EVENT_COLUMNS: &str =
    "thread_id, run_id, seq, event_type, category, content, metadata, created_at, user_id";

/// A `waymark_run_events` row.
pub(crate) fn event(r: &Row<'_>) -> SqlResult<RunEvent> {
    Ok(RunEvent {
        thread_id: r.id("thread_id")?,
        run_id: r.id("run_id")?,
        seq: r.i64("seq")?,
        event_type: r.id("event_type")?,
        category: r.id("category")?,
        content: r.json("content")?,
        metadata: r.json_object("metadata")?,
        created_at: r.ts("created_at")?,
        user_id: r.opt_id("user_id")?,
    })
}
