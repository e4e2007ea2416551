//! The backend conformance suite against the in-memory backend.

use std::sync::Arc;

use messaging_core::{InMemoryBackend, MessageBackend};

async fn backend() -> Arc<dyn MessageBackend> {
    Arc::new(InMemoryBackend::new())
}

messaging_core::backend_conformance_tests!(backend);
