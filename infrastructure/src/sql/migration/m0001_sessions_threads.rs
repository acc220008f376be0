//! Sessions and thread metadata (spec `history-and-streams.md` §6.1). Threads carry the
//! pin flag inside `metadata`; search orders by it directly.

super::migration!(
    "m0001_sessions_threads",
    "
CREATE TABLE IF NOT EXISTS waymark_sessions (
    id {key} PRIMARY KEY,
    owner {key} NULL,
    title TEXT NULL,
    metadata {json} NOT NULL,
    status TEXT NOT NULL,
    max_checkpoints_per_thread BIGINT NULL,
    retention_seconds BIGINT NULL,
    exempt_snapshots {bool} NOT NULL,
    created_at {ts} NOT NULL,
    updated_at {ts} NOT NULL
);
CREATE INDEX IF NOT EXISTS waymark_sessions_owner_updated ON waymark_sessions (owner, updated_at);
CREATE TABLE IF NOT EXISTS waymark_threads (
    id {key} PRIMARY KEY,
    session_id {key} NULL,
    owner {key} NULL,
    assistant_id TEXT NULL,
    display_name TEXT NULL,
    status TEXT NOT NULL DEFAULT 'idle',
    metadata {json} NOT NULL,
    created_at {ts} NOT NULL,
    updated_at {ts} NOT NULL
);
CREATE INDEX IF NOT EXISTS waymark_threads_owner_updated ON waymark_threads (owner, updated_at);
CREATE INDEX IF NOT EXISTS waymark_threads_session ON waymark_threads (session_id);
CREATE INDEX IF NOT EXISTS waymark_threads_assistant ON waymark_threads (assistant_id)
",
    &[],
    &["waymark_threads", "waymark_sessions"]
);
