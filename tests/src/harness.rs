//! The harness every backend plugs into.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;

use chrono::{TimeZone, Utc};
use futures::FutureExt;
use waymark_domain::Stores;
use waymark_domain::clock::ManualClock;

/// A boxed future, as cleanup hooks and test bodies are passed around.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// How a backend's checkpoint `list` interprets a metadata filter (spec `langgraph-compat.md`
/// §5). Tests that depend on the difference branch on this.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FilterSemantics {
    /// jsonb containment (PostgreSQL, memory, Waymark's native layout).
    Containment,
    /// `json_extract` equality (LangGraph's SQLite layout).
    SqliteJsonExtract,
}

/// One freshly created, empty backend for one test.
pub struct TestBackend {
    /// A short name for messages, e.g. `"sqlite-file"`.
    pub name: &'static str,
    /// Every port.
    pub stores: Stores,
    /// The clock the stores read; tests move it to exercise TTL and retention.
    pub clock: Arc<ManualClock>,
    /// The checkpoint filter rule of this backend.
    pub filter_semantics: FilterSemantics,
    /// True when several OS processes may share the backend (SQL backends).
    pub multi_process: bool,
    /// False for checkpoint layouts that embed every channel value in one msgpack document
    /// (LangGraph's SQLite layout, spec `langgraph-compat.md` §3.3): there, channel values
    /// with tags other than `msgpack`, `null`, `bytes` and `bytearray` cannot be stored and are
    /// refused with `InvalidInput`. Pending writes keep any tag on every layout.
    pub opaque_channel_values: bool,
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
            filter_semantics: FilterSemantics::Containment,
            multi_process: false,
            opaque_channel_values: true,
            cleanup: std::sync::Mutex::new(None),
        }
    }

    /// Sets the filter rule.
    pub fn with_filter_semantics(mut self, s: FilterSemantics) -> Self {
        self.filter_semantics = s;
        self
    }

    /// Marks the backend as shareable between processes.
    pub fn multi_process(mut self) -> Self {
        self.multi_process = true;
        self
    }

    /// Declares that channel values with opaque serializer tags are refused (see
    /// [`TestBackend::opaque_channel_values`]).
    pub fn without_opaque_channel_values(mut self) -> Self {
        self.opaque_channel_values = false;
        self
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
