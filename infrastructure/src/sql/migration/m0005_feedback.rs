//! Feedback (spec `history-and-streams.md` §4.2): `user_id` is NOT NULL with `''` for the
//! anonymous author, so the unique key holds on both databases and the upsert is one
//! `INSERT .. ON CONFLICT` statement.

super::migration!(
    "m0005_feedback",
    "
CREATE TABLE IF NOT EXISTS waymark_feedback (
    id {key} PRIMARY KEY,
    thread_id {key} NOT NULL,
    run_id {key} NOT NULL,
    user_id {key} NOT NULL DEFAULT '',
    message_id TEXT NULL,
    rating SMALLINT NOT NULL CHECK (rating IN (-1, 1)),
    comment TEXT NULL,
    created_at {ts} NOT NULL,
    updated_at {ts} NOT NULL,
    UNIQUE (thread_id, run_id, user_id)
);
CREATE INDEX IF NOT EXISTS waymark_feedback_run ON waymark_feedback (run_id);
CREATE INDEX IF NOT EXISTS waymark_feedback_user ON waymark_feedback (user_id)
",
    &[],
    &["waymark_feedback"]
);
