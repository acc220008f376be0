//! Token-usage records; statistics are computed with `SUM`/`COUNT`/`GROUP BY`.

super::migration!(
    "m0006_token_usage",
    "
CREATE TABLE IF NOT EXISTS waymark_token_usage (
    id {key} PRIMARY KEY,
    session_id {key} NULL,
    thread_id {key} NULL,
    run_id {key} NULL,
    user_id {key} NULL,
    model {key} NOT NULL,
    prompt_tokens BIGINT NOT NULL,
    completion_tokens BIGINT NOT NULL,
    total_tokens BIGINT NOT NULL,
    recorded_at {ts} NOT NULL
);
CREATE INDEX IF NOT EXISTS waymark_token_usage_thread ON waymark_token_usage (thread_id);
CREATE INDEX IF NOT EXISTS waymark_token_usage_session ON waymark_token_usage (session_id);
CREATE INDEX IF NOT EXISTS waymark_token_usage_recorded ON waymark_token_usage (recorded_at)
",
    &[],
    &["waymark_token_usage"]
);
