//! placeholder

#[allow(unused_imports)]
use crate::harness::TestBackend;

// -- case list (every `pub async fn` above, in order) ----------------------------------------

/// Runs every token_usage case against `$factory` (an absolute path to an
/// `async fn() -> Option<TestBackend>`): one `#[tokio::test]` per case in a module `token_usage`.
#[macro_export]
macro_rules! token_usage_contract {
    ($factory:path) => {
        mod token_usage {
            $crate::__contract_cases!($factory, token_usage, []);
        }
    };
}
