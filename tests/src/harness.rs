//! The harness every backend plugs into.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;

use chrono::{TimeZone, Utc};
use futures::FutureExt;
use waymark_domain::Stores;
use waymark_domain::checkpoint::FilterSemantics;
use waymark_domain::clock::ManualClock;

/// A boxed future, as cleanup hooks and test bodies are passed around.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// One freshly created, empty backend for one test.
pub struct TestBackend {
    /// A short name for messages, e.g. `"sqlite-file"`.
    pub name: &'static str,
    /// Every port.
    pub stores: Stores,
    /// The clock the stores read; tests move it to exercise TTL and retention.
    pub clock: Arc<ManualClock>,
    /// True when several OS processes may share the backend (SQL backends).
    pub multi_process: bool,
    /// Behind a mutex only so that `TestBackend` is `Sync` (test bodies hold `&TestBackend`
    /// across awaits on a multi-threaded runtime); it is taken once, after the body.
    cleanup: std::sync::Mutex<Option<BoxFuture<'static, ()>>>,
}

impl TestBackend {
    /// A backend with no cleanup.
    pub fn new(name: &'static str, stores: Stores, clock: Arc<ManualClock>) -> Self {
        Self {
            name,
            stores,
            clock,
            multi_process: false,
            cleanup: std::sync::Mutex::new(None),
        }
    }

    /// Marks the backend as shareable between processes.
    pub fn multi_process(mut self) -> Self {
        self.multi_process = true;
        self
    }

    /// The checkpoint filter rule of this backend, as its checkpoint store reports it (tests
    /// that depend on the difference branch on this).
    pub fn filter_semantics(&self) -> FilterSemantics {
        self.stores.checkpoints.capabilities().filter_semantics
    }

    /// False for checkpoint layouts that embed every channel value in one msgpack document
    /// (LangGraph's SQLite layout, spec `langgraph-compat.md` §3.3): there, channel values
    /// with tags other than `msgpack`, `null`, `bytes` and `bytearray` cannot be stored and are
    /// refused with `InvalidInput`. Pending writes keep any tag on every layout. Reported by
    /// the checkpoint store.
    pub fn opaque_channel_values(&self) -> bool {
        !self.stores.checkpoints.capabilities().embeds_channel_values
    }

    /// Runs `cleanup` after the test body, whether it passed or panicked (drop a schema,
    /// delete a file).
    pub fn with_cleanup(mut self, cleanup: impl Future<Output = ()> + Send + 'static) -> Self {
        self.cleanup = std::sync::Mutex::new(Some(Box::pin(cleanup)));
        self
    }
}

/// The clock every test starts from: a fixed, recognisable instant.
pub fn test_clock() -> Arc<ManualClock> {
    Arc::new(ManualClock::new(
        Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5)
            .single()
            .expect("valid date"),
    ))
}

/// Creates a backend with `factory`, runs `body` on it, then cleans up. A factory answering
/// `None` (its server is unavailable and not required) skips the test with a visible message.
pub async fn run<F, Fut>(
    test_name: &str,
    factory: F,
    body: for<'a> fn(&'a TestBackend) -> BoxFuture<'a, ()>,
) where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Option<TestBackend>>,
{
    let Some(mut backend) = factory().await else {
        // Written to the stderr handle rather than with `eprintln!`, which libtest captures:
        // a skipped case must be visible in a passing run.
        use std::io::Write;
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED {test_name}: backend unavailable (set WAYMARK_REQUIRE_POSTGRES=1 to fail instead)"
        );
        return;
    };
    let outcome = AssertUnwindSafe(body(&backend)).catch_unwind().await;
    let cleanup = backend
        .cleanup
        .get_mut()
        .unwrap_or_else(|p| p.into_inner())
        .take();
    if let Some(cleanup) = cleanup {
        cleanup.await;
    }
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}
