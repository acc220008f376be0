//! placeholder

#[allow(unused_imports)]
use crate::harness::TestBackend;

// -- case list (every `pub async fn` above, in order) ----------------------------------------

/// Runs every snapshot case against `$factory` (an absolute path to an
/// `async fn() -> Option<TestBackend>`): one `#[tokio::test]` per case in a module `snapshot`.
#[macro_export]
macro_rules! snapshot_contract {
    ($factory:path) => {
        mod snapshot {
            $crate::__contract_cases!($factory, snapshot, []);
        }
    };
}
