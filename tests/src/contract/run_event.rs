//! placeholder

#[allow(unused_imports)]
use crate::harness::TestBackend;

// -- case list (every `pub async fn` above, in order) ----------------------------------------

/// Runs every run_event case against `$factory` (an absolute path to an
/// `async fn() -> Option<TestBackend>`): one `#[tokio::test]` per case in a module `run_event`.
#[macro_export]
macro_rules! run_event_contract {
    ($factory:path) => {
        mod run_event {
            $crate::__contract_cases!($factory, run_event, []);
        }
    };
}
