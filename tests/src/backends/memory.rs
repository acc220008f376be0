//! The in-memory backend: every port from `waymark_infrastructure::memory`, reading the test's
//! manual clock. Always available.

use crate::harness::{TestBackend, test_clock};
use waymark_infrastructure::memory::MemoryBackend;

/// A fresh in-memory backend (containment filter semantics, spec `langgraph-compat.md` §5).
pub async fn backend() -> Option<TestBackend> {
    let clock = test_clock();
    let memory = MemoryBackend::with_clock(clock.clone());
    Some(TestBackend::new("memory", memory.stores(), clock))
}
