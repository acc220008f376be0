//! placeholder

#[allow(unused_imports)]
use crate::harness::TestBackend;

// -- case list (every `pub async fn` above, in order) ----------------------------------------

/// Runs every thread case against `$factory` (an absolute path to an
/// `async fn() -> Option<TestBackend>`): one `#[tokio::test]` per case in a module `thread`.
#[macro_export]
macro_rules! thread_contract {
    ($factory:path) => {
        mod thread {
            $crate::__contract_cases!($factory, thread, []);
        }
    };
}
