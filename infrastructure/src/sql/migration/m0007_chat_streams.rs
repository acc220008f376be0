//! Persisted chat streams (spec `history-and-streams.md` §5.5): one row per thread whose
//! `messages` JSON array grows by atomic appends; `frame_count` is kept beside it so listings
//! never parse the array.

super::migration!(
    "m0007_chat_streams",
    "
CREATE TABLE IF NOT EXISTS waymark_chat_streams (
    thread_id {key} PRIMARY KEY,
    user_id {key} NULL,
    messages {json} NOT NULL,
    frame_count BIGINT NOT NULL,
    ts {ts} NOT NULL,
    created_at {ts} NOT NULL
);
CREATE INDEX IF NOT EXISTS waymark_chat_streams_ts ON waymark_chat_streams (ts)
",
    &[],
    &["waymark_chat_streams"]
);
