//! The core conformance suite against a real Redis: `REDIS_URL`, each backend
//! under a key prefix of its own.

mod support;

use std::sync::Arc;

use messaging_core::Backend;
use messaging_redis::{RedisBackend, RedisBackendConfig, Retention};

async fn backend() -> Arc<dyn Backend> {
    connect(|config| config).await
}

/// Topics capped at `cap` messages, no settled history kept.
async fn capped(cap: usize) -> Arc<dyn Backend> {
    connect(|config| {
        config
            .with_topic_cap(cap)
            .with_retention(Retention::Settled { keep: 0 })
    })
    .await
}

/// A backend under a prefix of its own, trimming every 50 ms so the suite runs
/// with trims going on.
async fn connect(
    configure: impl FnOnce(RedisBackendConfig) -> RedisBackendConfig,
) -> Arc<dyn Backend> {
    connect_redis(configure).await
}

async fn connect_redis(
    configure: impl FnOnce(RedisBackendConfig) -> RedisBackendConfig,
) -> Arc<RedisBackend> {
    let url = messaging_test_support::redis_url();
    support::suite_backend("REDIS_URL", &url, "conformance", configure).await
}

messaging_core::backend_conformance_tests!(backend, capped: capped);

/// One backend as both its schedule and its message side.
async fn schedules() -> (
    Arc<dyn messaging_core::schedule::ScheduleBackend>,
    Arc<dyn Backend>,
) {
    let backend = connect_redis(|config| config).await;
    (backend.clone(), backend)
}

messaging_core::schedule_conformance_tests!(schedules);

/// The same suites with every topic partitioned (3 partitions, recorded at a
/// topic's first use): each partition its own stream `{P:T#i}`.
mod partitioned {
    use std::sync::Arc;

    use messaging_core::{Backend, Partitioned};
    use messaging_redis::{RedisBackend, Retention};

    fn partitioned(backend: Arc<RedisBackend>) -> Arc<Partitioned<RedisBackend>> {
        crate::support::partitioned(backend, 3)
    }

    async fn backend() -> Arc<dyn Backend> {
        partitioned(super::connect_redis(|config| config).await)
    }

    async fn capped(cap: usize) -> Arc<dyn Backend> {
        partitioned(
            super::connect_redis(|config| {
                config
                    .with_topic_cap(cap)
                    .with_retention(Retention::Settled { keep: 0 })
            })
            .await,
        )
    }

    messaging_core::backend_conformance_tests!(backend, capped: capped);

    async fn schedules() -> (
        Arc<dyn messaging_core::schedule::ScheduleBackend>,
        Arc<dyn Backend>,
    ) {
        let backend = partitioned(super::connect_redis(|config| config).await);
        (backend.clone(), backend)
    }

    messaging_core::schedule_conformance_tests!(schedules);
}

/// The same suite with every topic a priority topic (three lanes `{P:T#0}` high,
/// `#1` normal, `#2` low, recorded at a topic's first use).
mod prioritized {
    use std::sync::Arc;

    use messaging_core::{Backend, Partitioned};
    use messaging_redis::{RedisBackend, Retention};

    fn prioritized(backend: Arc<RedisBackend>) -> Arc<Partitioned<RedisBackend>> {
        Arc::new(Partitioned::from_arc(backend).prioritizing_new_topics())
    }

    async fn backend() -> Arc<dyn Backend> {
        prioritized(super::connect_redis(|config| config).await)
    }

    async fn capped(cap: usize) -> Arc<dyn Backend> {
        prioritized(
            super::connect_redis(|config| {
                config
                    .with_topic_cap(cap)
                    .with_retention(Retention::Settled { keep: 0 })
            })
            .await,
        )
    }

    messaging_core::backend_conformance_tests!(backend, capped: capped);
}
