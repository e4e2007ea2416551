use std::sync::Arc;
use std::time::Duration;

use messaging_core::BackendError;
use redis::Client;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use crate::RedisBackendConfig;
use crate::connection::{Connection, Topology, connect_cluster};
use crate::dead_letters::DeadLetterPage;
use crate::due_schedule::Schedule;
use crate::error::backend_error;
use crate::inner::Inner;
use crate::maintenance::{self, PROMOTE_BATCH};
use crate::pool::BlockingPool;
use crate::{ack_queue, acks};

/// The Redis Streams backend. Cloning is cheap and shares the connections.
///
/// See the [crate documentation](crate) for an example and `docs/redis.md` for
/// the key layout and guarantees.
#[derive(Clone)]
pub struct RedisBackend {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for RedisBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisBackend")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

impl RedisBackend {
    /// Connects to the server of `config.url` and starts the tasks that promote
    /// due delayed messages, trim streams and send acks (they stop when the last
    /// clone of the backend is dropped). Must be called within a Tokio runtime.
    ///
    /// An unreachable server is a transient error
    /// ([`BackendError::is_transient`]), reported after one attempt; a bad URL,
    /// prefix or password is not. Once connected, the backend reconnects by
    /// itself whenever the connection breaks.
    pub async fn connect(config: RedisBackendConfig) -> Result<Self, BackendError> {
        config
            .check()
            .map_err(|reason| BackendError::InvalidConfig {
                backend: "redis",
                reason: reason.to_owned(),
            })?;
        let topology =
            Topology::parse(&config.url).map_err(|reason| BackendError::InvalidConfig {
                backend: "redis",
                reason,
            })?;
        let (connection, blocking) = match topology {
            Topology::Single(url) => {
                let client = Client::open(url.as_str()).map_err(BackendError::command)?;
                // One plain attempt first, so an unreachable server or a wrong
                // password is reported now rather than after the connection
                // manager's retries.
                let blocking = BlockingPool::new(client.clone(), config.connect_timeout);
                let first = blocking.connect().await.map_err(backend_error)?;
                blocking.give_back(first);
                let manager_config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(config.connect_timeout))
                    .set_response_timeout(Some(config.command_timeout))
                    .set_max_delay(Duration::from_secs(2));
                let connection = ConnectionManager::new_with_config(client, manager_config)
                    .await
                    .map_err(backend_error)?;
                (Connection::Managed(connection), blocking)
            }
            Topology::Cluster(nodes) => {
                // The cluster client reconnects, follows MOVED and ASK and
                // refreshes its slot map by itself.
                let connection =
                    connect_cluster(&nodes, config.connect_timeout, Some(config.command_timeout))
                        .await
                        .map_err(backend_error)?;
                let blocking = BlockingPool::cluster(nodes, config.connect_timeout);
                (Connection::Cluster(connection), blocking)
            }
        };
        let schedule = Arc::new(Schedule::default());
        let (acks, ack_requests) = ack_queue::channel();
        let inner = Arc::new(Inner::new(
            config,
            connection,
            blocking,
            schedule.clone(),
            acks,
        ));
        tokio::spawn(maintenance::run(Arc::downgrade(&inner), schedule));
        tokio::spawn(acks::run(Arc::downgrade(&inner), ack_requests));
        Ok(Self { inner })
    }

    /// The configuration it was connected with.
    pub fn config(&self) -> &RedisBackendConfig {
        &self.inner.config
    }

    /// Moves the delayed messages of `topic` that are due into its stream now,
    /// and returns how many. The backend does this by itself (see
    /// [`RedisBackendConfig::promote_interval`]); this is for tools and tests.
    pub async fn promote_due(&self, topic: &str) -> Result<u64, BackendError> {
        let mut moved = 0;
        loop {
            let round = self.inner.promote(topic).await?;
            moved += round;
            if round < PROMOTE_BATCH as u64 {
                return Ok(moved);
            }
        }
    }

    /// Rebuilds the due index from every registered topic's delayed set now:
    /// adds the entries that are missing and lowers those that are late, and
    /// returns how many it changed. The backend does this by itself every
    /// [`RedisBackendConfig::sweep_interval`] (one process per prefix); this is
    /// for tools, tests, and right after upgrading from a version without the
    /// index while processes of that version scheduled messages. Costs one
    /// `ZRANGE` per registered topic, pipelined 500 at a time.
    pub async fn sweep_due_index(&self) -> Result<u64, BackendError> {
        Ok(self.inner.sweep_due_index(false).await?.unwrap_or(0))
    }
}

impl RedisBackend {
    /// Up to `limit` entries of a topic's dead-letter stream, oldest first,
    /// after the entry `after` (from the start for `None`): the dead letters
    /// among them and, reported apart, the entries that are none (so that junk
    /// written to the stream cannot hide what follows it). Page on with
    /// [`DeadLetterPage::next`]. An `after` that is no stream id is a
    /// [`BackendError::Command`].
    pub async fn dead_letter_page(
        &self,
        topic: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<DeadLetterPage, BackendError> {
        self.inner.dead_letter_page(topic, after, limit).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backend_is_send_and_sync() {
        fn assert_send_sync<T: Send + Sync + 'static>() {}
        assert_send_sync::<RedisBackend>();
        fn assert_object_safe(_: Option<Arc<dyn messaging_core::Backend>>) {}
        assert_object_safe(
            None::<Arc<RedisBackend>>.map(|b| b as Arc<dyn messaging_core::Backend>),
        );
    }
}
