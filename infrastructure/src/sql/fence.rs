//! In-process per-key async mutexes.
//!
//! Run-event seq allocation takes the thread's mutex before its transaction (spec
//! `history-and-streams.md` §1.5 step 1): writers of one process queue here instead of
//! contending on the database lock, which on SQLite would otherwise mean busy waits. The
//! database still serializes writers of different processes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::{Mutex as AsyncMutex, OwnedMutexGuard};

/// A map of async mutexes keyed by text; entries nobody holds are dropped as the map grows.
#[derive(Debug, Default)]
pub struct Fences {
    map: Mutex<HashMap<String, Arc<AsyncMutex<()>>>>,
}

impl Fences {
    /// Waits for and takes the mutex of `key`.
    pub async fn lock(&self, key: &str) -> OwnedMutexGuard<()> {
        let m = {
            let mut map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
            if map.len() > 4096 {
                // Only entries referenced by the map alone are idle.
                map.retain(|_, m| Arc::strong_count(m) > 1);
            }
            map.entry(key.to_owned()).or_default().clone()
        };
        m.lock_owned().await
    }
}
