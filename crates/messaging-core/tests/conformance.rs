//! The backend conformance suite against the in-memory backend.

use std::sync::Arc;

use messaging_core::{Backend, InMemoryBackend, Retention};

async fn backend() -> Arc<dyn Backend> {
    Arc::new(InMemoryBackend::new())
}

async fn capped(cap: usize) -> Arc<dyn Backend> {
    Arc::new(
        InMemoryBackend::new()
            .with_topic_cap(cap)
            .with_retention(Retention::Settled { keep: 0 }),
    )
}

messaging_core::backend_conformance_tests!(backend, capped: capped);

async fn schedules() -> (
    Arc<dyn messaging_core::schedule::ScheduleBackend>,
    Arc<dyn Backend>,
) {
    let backend = Arc::new(InMemoryBackend::new());
    (backend.clone(), backend)
}

messaging_core::schedule_conformance_tests!(schedules);
