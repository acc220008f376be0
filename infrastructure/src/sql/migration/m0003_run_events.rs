//! The run-event log (spec `history-and-streams.md` §1.7) and its per-thread seq counters
//! (§1.5). `(thread_id, seq)` is the primary key, the backstop against duplicate seqs; the
//! partial unique index backs `put_if_absent` for singleton event types.

super::migration!(
    "m0003_run_events",
    "
CREATE TABLE IF NOT EXISTS waymark_run_events (
    thread_id {key} NOT NULL,
    seq BIGINT NOT NULL,
    run_id {key} NOT NULL,
    user_id {key} NULL,
    event_type VARCHAR(32) NOT NULL,
    category VARCHAR(16) NOT NULL,
    content {json} NOT NULL,
    metadata {json} NOT NULL,
    created_at {ts} NOT NULL,
    PRIMARY KEY (thread_id, seq)
);
CREATE INDEX IF NOT EXISTS waymark_run_events_thread_cat_seq ON waymark_run_events (thread_id, category, seq);
CREATE INDEX IF NOT EXISTS waymark_run_events_run ON waymark_run_events (thread_id, run_id, seq);
CREATE INDEX IF NOT EXISTS waymark_run_events_user ON waymark_run_events (user_id);
CREATE UNIQUE INDEX IF NOT EXISTS waymark_run_events_singleton
    ON waymark_run_events (thread_id, run_id, event_type) WHERE event_type = 'run.delivery';
CREATE TABLE IF NOT EXISTS waymark_run_event_counters (
    thread_id {key} PRIMARY KEY,
    last_seq BIGINT NOT NULL
)
",
    &[],
    &["waymark_run_event_counters", "waymark_run_events"]
);
