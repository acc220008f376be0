//! placeholder

#[allow(unused_imports)]
use crate::harness::TestBackend;

// -- case list (every `pub async fn` above, in order) ----------------------------------------

/// Runs every branch case against `$factory` (an absolute path to an
/// `async fn() -> Option<TestBackend>`): one `#[tokio::test]` per case in a module `branch`.
#[macro_export]
macro_rules! branch_contract {
    ($factory:path) => {
        mod branch {
            $crate::__contract_cases!($factory, branch, []);
        }
    };
}
