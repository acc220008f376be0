//! The contract suite: one module of cases per port, written once and run against every
//! backend.
//!
//! A case is `pub async fn <case>(b: &TestBackend)`: it gets a fresh, empty backend, uses only
//! the port (`b.stores.<port>`), makes its own random ids (so it also holds on a shared server)
//! and moves `b.clock` instead of sleeping. Each port module ends with a macro listing its
//! cases; a backend's test file instantiates them with its factory:
//!
//! ```ignore
//! // tests/tests/contract_memory.rs
//! waymark_tests::all_contracts!(waymark_tests::backends::memory::backend);
//! // a checkpoint-only backend (LangGraph's table layouts)
//! waymark_tests::checkpoint_contract!(waymark_tests::backends::langgraph::sqlite_backend);
//! ```
//!
//! Each port macro expands to a module named after the port holding one
//! `#[tokio::test(flavor = "multi_thread", worker_threads = 4)]` per case, so a run can be
//! narrowed with `cargo test --test contract_memory checkpoint::` or `run_event::`. The factory
//! must be an absolute path (`waymark_tests::...` or `crate::...`) because it is used two
//! modules deep; a factory answering `None` makes every case print `SKIPPED` and pass.

pub mod branch;
pub mod chat_stream;
pub mod checkpoint;
pub mod feedback;
pub mod fixtures;
pub mod kv;
pub mod run;
pub mod run_event;
pub mod session;
pub mod snapshot;
pub mod thread;
pub mod token_usage;

/// Expands one `#[tokio::test]` per case of `$port`, each running
/// `$crate::contract::$port::$case` on a backend from `$factory` through
/// [`harness::run`](crate::harness::run). Used by the port macros; not meant to be called
/// directly.
#[doc(hidden)]
#[macro_export]
macro_rules! __contract_cases {
    ($factory:path, $port:ident, [$($case:ident),* $(,)?]) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $case() {
                $crate::harness::run(
                    concat!(stringify!($port), "::", stringify!($case)),
                    $factory,
                    |b| ::std::boxed::Box::pin($crate::contract::$port::$case(b)),
                )
                .await;
            }
        )*
    };
}

/// Every port's contract against one backend that implements all of them.
#[macro_export]
macro_rules! all_contracts {
    ($factory:path) => {
        $crate::checkpoint_contract!($factory);
        $crate::session_contract!($factory);
        $crate::thread_contract!($factory);
        $crate::branch_contract!($factory);
        $crate::snapshot_contract!($factory);
        $crate::run_event_contract!($factory);
        $crate::token_usage_contract!($factory);
        $crate::feedback_contract!($factory);
        $crate::chat_stream_contract!($factory);
        $crate::kv_contract!($factory);
        $crate::run_contract!($factory);
    };
}
