//! Branch and snapshot records: names unique per (source) thread, one branch per carrier
//! thread.

super::migration!(
    "m0004_branches_snapshots",
    "
CREATE TABLE IF NOT EXISTS waymark_branches (
    id {key} PRIMARY KEY,
    name {key} NOT NULL,
    source_thread_id {key} NOT NULL,
    source_ns {key} NOT NULL,
    source_checkpoint_id {key} NOT NULL,
    thread_id {key} NOT NULL UNIQUE,
    metadata {json} NOT NULL,
    created_at {ts} NOT NULL,
    UNIQUE (source_thread_id, name)
);
CREATE TABLE IF NOT EXISTS waymark_snapshots (
    id {key} PRIMARY KEY,
    thread_id {key} NOT NULL,
    ns {key} NOT NULL,
    checkpoint_id {key} NOT NULL,
    name {key} NOT NULL,
    description TEXT NULL,
    kind TEXT NOT NULL,
    metadata {json} NOT NULL,
    created_at {ts} NOT NULL,
    UNIQUE (thread_id, name)
)
",
    &[],
    &["waymark_snapshots", "waymark_branches"]
);
