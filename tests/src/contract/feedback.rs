//! placeholder

#[allow(unused_imports)]
use crate::harness::TestBackend;

// -- case list (every `pub async fn` above, in order) ----------------------------------------

/// Runs every feedback case against `$factory` (an absolute path to an
/// `async fn() -> Option<TestBackend>`): one `#[tokio::test]` per case in a module `feedback`.
#[macro_export]
macro_rules! feedback_contract {
    ($factory:path) => {
        mod feedback {
            $crate::__contract_cases!($factory, feedback, []);
        }
    };
}
