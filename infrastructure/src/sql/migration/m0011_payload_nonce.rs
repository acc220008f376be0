//! `waymark_checkpoint_payloads.nonce`: a random number chosen by the put that inserted the
//! row (0 for rows older than this column, and for copies).
//!
//! A payload is content-addressed by `(thread, namespace, channel, version)`, so a process
//! that remembers what it inserted under a key (the delta cache) can tell whether the row now
//! under that key is still its own only by something the row carries: another process may
//! have deleted the thread and written the same key again with a different value. The nonce
//! is that mark. A delta is stored only over a base that still carries the nonce this process
//! inserted it with, and a read takes a value from the cache only after the row's nonce is
//! checked.
//!
//! The column comes after `data` (SQLite adds columns at the end): it is read from the rows
//! at the head of a chain, usually small deltas stored inline.

/// See the module documentation.
pub struct Migration;

impl sea_orm_migration::MigrationName for Migration {
    fn name(&self) -> &str {
        "m0011_payload_nonce"
    }
}

#[async_trait::async_trait]
impl sea_orm_migration::MigrationTrait for Migration {
    async fn up(&self, manager: &sea_orm_migration::SchemaManager) -> Result<(), sea_orm::DbErr> {
        // Like every migration here, safe to run again (SQLite has no `ADD COLUMN IF NOT
        // EXISTS`).
        if manager
            .has_column("waymark_checkpoint_payloads", "nonce")
            .await?
        {
            return Ok(());
        }
        super::run(
            manager,
            "ALTER TABLE waymark_checkpoint_payloads ADD COLUMN nonce BIGINT NOT NULL DEFAULT 0",
            &[],
        )
        .await
    }

    async fn down(&self, manager: &sea_orm_migration::SchemaManager) -> Result<(), sea_orm::DbErr> {
        super::run(
            manager,
            "ALTER TABLE waymark_checkpoint_payloads DROP COLUMN nonce",
            &[],
        )
        .await
    }
}
