//! placeholder

#[allow(unused_imports)]
use crate::harness::TestBackend;

// -- case list (every `pub async fn` above, in order) ----------------------------------------

/// Runs every kv case against `$factory` (an absolute path to an
/// `async fn() -> Option<TestBackend>`): one `#[tokio::test]` per case in a module `kv`.
#[macro_export]
macro_rules! kv_contract {
    ($factory:path) => {
        mod kv {
            $crate::__contract_cases!($factory, kv, []);
        }
    };
}
