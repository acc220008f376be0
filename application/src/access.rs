//! The thread access check of spec §6.6 as services use it: a denied check becomes
//! [`ApplicationError::AccessDenied`] before anything is read or written.

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
