//! placeholder

#[allow(unused_imports)]
use crate::harness::TestBackend;

// -- case list (every `pub async fn` above, in order) ----------------------------------------

/// Runs every chat_stream case against `$factory` (an absolute path to an
/// `async fn() -> Option<TestBackend>`): one `#[tokio::test]` per case in a module `chat_stream`.
#[macro_export]
macro_rules! chat_stream_contract {
    ($factory:path) => {
        mod chat_stream {
            $crate::__contract_cases!($factory, chat_stream, []);
        }
    };
}
