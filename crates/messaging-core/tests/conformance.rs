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

/// The same suite with every topic partitioned: each topic a test uses is
/// recorded with 3 partitions at its first use.
mod partitioned {
    use std::sync::Arc;

    use messaging_core::{Backend, InMemoryBackend, Partitioned, Retention};

    fn partitioned(backend: InMemoryBackend) -> Arc<Partitioned<InMemoryBackend>> {
        Arc::new(
            Partitioned::new(backend)
                .partitioning_new_topics(3)
                .expect("3 partitions"),
        )
    }

    async fn backend() -> Arc<dyn Backend> {
        partitioned(InMemoryBackend::new())
    }

    async fn capped(cap: usize) -> Arc<dyn Backend> {
        partitioned(
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
        let backend = partitioned(InMemoryBackend::new());
        (backend.clone(), backend)
    }

    messaging_core::schedule_conformance_tests!(schedules);
}

/// The same suite with every topic a priority topic (three lanes, recorded at
/// a topic's first use): everything holds within each lane.
mod prioritized {
    use std::sync::Arc;

    use messaging_core::{Backend, InMemoryBackend, Partitioned, Retention};

    async fn backend() -> Arc<dyn Backend> {
        Arc::new(Partitioned::new(InMemoryBackend::new()).prioritizing_new_topics())
    }

    async fn capped(cap: usize) -> Arc<dyn Backend> {
        Arc::new(
            Partitioned::new(
                InMemoryBackend::new()
                    .with_topic_cap(cap)
                    .with_retention(Retention::Settled { keep: 0 }),
            )
            .prioritizing_new_topics(),
        )
    }

    messaging_core::backend_conformance_tests!(backend, capped: capped);
}
