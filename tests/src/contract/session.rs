//! placeholder

#[allow(unused_imports)]
use crate::harness::TestBackend;

// -- case list (every `pub async fn` above, in order) ----------------------------------------

/// Runs every session case against `$factory` (an absolute path to an
/// `async fn() -> Option<TestBackend>`): one `#[tokio::test]` per case in a module `session`.
#[macro_export]
macro_rules! session_contract {
    ($factory:path) => {
        mod session {
            $crate::__contract_cases!($factory, session, []);
        }
    };
}
