//! The thread access check of spec §6.6 as services use it: a denied check becomes
//! [`ApplicationError::AccessDenied`] before anything is read or written.
//!
//! The ownership model: a user reads, changes and deletes only threads whose row they own;
//! a missing row, another owner's row and an owner-less (legacy or row-less) thread all
//! answer `AccessDenied`, which every surface reports exactly like a missing thread. The
//! first write to a thread id [`claim`]s it: the row is created with the caller as owner in
//! one atomic store call. `Unscoped` (administrative) callers may use every thread.

use waymark_domain::thread::ThreadRepository;
use waymark_domain::{ThreadId, UserScope};

use crate::error::{AppResult, ApplicationError};

/// Whether the check is for a read or a mutation (the two columns of the §6.6 table).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// A missing thread is readable (there is nothing to read).
    Read,
    /// A missing thread is not mutable.
    Write,
}

/// Fails with [`ApplicationError::AccessDenied`] unless the scope may use the thread.
pub(crate) async fn ensure(
    threads: &dyn ThreadRepository,
    scope: &UserScope,
    thread_id: &ThreadId,
    access: Access,
) -> AppResult<()> {
    let allowed = threads
        .check_access(scope, thread_id, access == Access::Write)
        .await?;
    if allowed {
        Ok(())
    } else {
        Err(ApplicationError::AccessDenied {
            thread_id: thread_id.clone(),
        })
    }
}

/// Claims the thread for a first write ([`ThreadRepository::claim`]): creates the row owned
/// by the scope's user when none exists; [`ApplicationError::AccessDenied`] when the thread
/// is another owner's, owner-less, or row-less data the user may not adopt.
pub(crate) async fn claim(
    threads: &dyn ThreadRepository,
    scope: &UserScope,
    thread_id: &ThreadId,
) -> AppResult<()> {
    match threads.claim(scope, thread_id).await? {
        Some(_) => Ok(()),
        None => Err(ApplicationError::AccessDenied {
            thread_id: thread_id.clone(),
        }),
    }
}
