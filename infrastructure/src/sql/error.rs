//! The crate's SQL error type and its classification into [`DomainError`].
//!
//! Driver errors never cross the crate boundary: every store method maps its failures through
//! [`SqlError`] into a [`DomainError`] naming the operation, so callers can branch on the kind
//! (a unique-key violation is a conflict on every database) without knowing SeaORM or sqlx.

use sea_orm::{DbErr, SqlErr};
use waymark_domain::DomainError;

/// How the database classified a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DbFailure {
    /// A unique or primary key was violated.
    UniqueViolation,
    /// A foreign key was violated.
    ForeignKeyViolation,
    /// Anything else: connection, I/O, syntax, a busy database.
    Other,
}

/// What can go wrong in the SQL stores and in connecting to a database. Driver errors are
/// turned into text and a classification here, so no SeaORM or sqlx type leaves the crate.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SqlError {
    /// The database reported an error.
    #[error("{operation}: {message}")]
    Db {
        /// Which operation failed, e.g. `"checkpoints.put"`.
        operation: &'static str,
        /// The database's classification.
        failure: DbFailure,
        /// The driver's description.
        message: String,
    },
    /// A stored row could not be turned back into a domain value (corrupt or foreign data).
    #[error("{operation}: corrupt row: {message}")]
    Corrupt {
        /// Which operation read the row.
        operation: &'static str,
        /// What was wrong.
        message: String,
    },
    /// The connection URL or options are unusable.
    #[error("invalid connection settings: {0}")]
    Config(String),
    /// A domain rule refused the input.
    #[error(transparent)]
    Domain(#[from] DomainError),
}

impl SqlError {
    /// Classifies a driver error of `operation`.
    pub(crate) fn db(operation: &'static str, source: DbErr) -> Self {
        let failure = match source.sql_err() {
            Some(SqlErr::UniqueConstraintViolation(_)) => DbFailure::UniqueViolation,
            Some(SqlErr::ForeignKeyConstraintViolation(_)) => DbFailure::ForeignKeyViolation,
            _ => DbFailure::Other,
        };
        Self::Db {
            operation,
            failure,
            message: source.to_string(),
        }
    }

    /// A row that does not decode.
    pub fn corrupt(operation: &'static str, message: impl std::fmt::Display) -> Self {
        Self::Corrupt {
            operation,
            message: message.to_string(),
        }
    }
}

/// The entity a failing operation is about, for conflict messages (`"threads.create"` ->
/// `"thread"`).
fn entity_of(operation: &'static str) -> &'static str {
    match operation.split('.').next().unwrap_or(operation) {
        "sessions" => "session",
        "threads" => "thread",
        "branches" => "branch",
        "snapshots" => "snapshot",
        "checkpoints" => "checkpoint",
        "run_events" => "run_event",
        "token_usage" => "token_usage",
        "feedback" => "feedback",
        "chat_streams" => "chat_stream",
        "items" => "item",
        "runs" => "run",
        _ => "row",
    }
}

impl From<SqlError> for DomainError {
    fn from(e: SqlError) -> Self {
        match e {
            SqlError::Domain(d) => d,
            SqlError::Db {
                operation,
                failure,
                message,
            } => match failure {
                DbFailure::UniqueViolation | DbFailure::ForeignKeyViolation => {
                    DomainError::conflict(entity_of(operation), message)
                }
                DbFailure::Other => DomainError::storage(operation, message),
            },
            SqlError::Corrupt { operation, message } => {
                DomainError::storage(operation, format!("corrupt row: {message}"))
            }
            SqlError::Config(m) => DomainError::invalid("url", m),
        }
    }
}

/// Shorthand for results inside the SQL stores.
pub type SqlResult<T> = Result<T, SqlError>;

/// Attaches an operation name to driver errors.
pub(crate) trait DbResultExt<T> {
    /// Maps a `DbErr` into [`SqlError::Db`] for `operation`.
    fn op(self, operation: &'static str) -> SqlResult<T>;
}

impl<T> DbResultExt<T> for Result<T, DbErr> {
    fn op(self, operation: &'static str) -> SqlResult<T> {
        self.map_err(|e| SqlError::db(operation, e))
    }
}
