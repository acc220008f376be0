//! Runs (spec `history-and-streams.md` §6.2). The partial unique index on `thread_id` over
//! the active statuses enforces "at most one pending or running run per thread" in the
//! database, so concurrent creates from several processes cannot both succeed. The lease
//! (`lease_owner`, `lease_expires_at`) lets several workers share one PostgreSQL; the partial
//! index on `lease_expires_at` serves the expiry sweep. Run ids are unique within their thread
//! (the key is `(thread_id, run_id)`), so an id used on another user's thread tells nothing.

super::migration!(
    "m0010_runs",
    "
CREATE TABLE IF NOT EXISTS waymark_runs (
    thread_id {key} NOT NULL,
    run_id {key} NOT NULL,
    owner {key} NULL,
    status TEXT NOT NULL CHECK (status IN ('pending', 'running', 'success', 'error', 'timeout', 'interrupted')),
    created_at {ts} NOT NULL,
    updated_at {ts} NOT NULL,
    started_at {ts} NULL,
    ended_at {ts} NULL,
    error TEXT NULL,
    progress {json} NOT NULL,
    metadata {json} NOT NULL,
    lease_owner TEXT NULL,
    lease_expires_at {ts} NULL,
    attempt BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (thread_id, run_id)
);
CREATE UNIQUE INDEX IF NOT EXISTS waymark_runs_one_active ON waymark_runs (thread_id)
    WHERE status IN ('pending', 'running');
CREATE INDEX IF NOT EXISTS waymark_runs_thread_created ON waymark_runs (thread_id, created_at, run_id);
CREATE INDEX IF NOT EXISTS waymark_runs_lease ON waymark_runs (lease_expires_at)
    WHERE status = 'running'
",
    &[],
    &["waymark_runs"]
);
