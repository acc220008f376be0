//! The key-value store: items keyed by (dot-joined namespace, key), ordered by code point,
//! with an optional expiry.

super::migration!(
    "m0008_items",
    "
CREATE TABLE IF NOT EXISTS waymark_items (
    namespace {key} NOT NULL,
    item_key {key} NOT NULL,
    value {json} NOT NULL,
    created_at {ts} NOT NULL,
    updated_at {ts} NOT NULL,
    expires_at {ts} NULL,
    PRIMARY KEY (namespace, item_key)
);
CREATE INDEX IF NOT EXISTS waymark_items_expires ON waymark_items (expires_at) WHERE expires_at IS NOT NULL
",
    &[],
    &["waymark_items"]
);
