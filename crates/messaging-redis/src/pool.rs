//! Connections for blocking reads.
//!
//! A blocked `XREADGROUP` holds its connection on the server until it returns, so
//! it cannot share the multiplexed connection everything else uses. Each blocking
//! read takes a connection of its own from here and gives it back only when the
//! read finished cleanly; a read that was cancelled or failed drops it, which
//! closes it and releases the server side.

use std::sync::{Mutex, MutexGuard};

use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Client, RedisError};

/// Idle connections kept for reuse.
const MAX_IDLE: usize = 64;

pub(crate) struct BlockingPool {
    client: Client,
    config: AsyncConnectionConfig,
    idle: Mutex<Vec<MultiplexedConnection>>,
}

impl BlockingPool {
    pub(crate) fn new(client: Client, connect_timeout: std::time::Duration) -> Self {
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(connect_timeout))
            // The caller bounds each read by its BLOCK time plus the command timeout.
            .set_response_timeout(None);
        Self {
            client,
            config,
            idle: Mutex::new(Vec::new()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Vec<MultiplexedConnection>> {
        self.idle
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// An idle connection (`true`: it may have broken while idle), or a new one.
    pub(crate) async fn take(&self) -> Result<(MultiplexedConnection, bool), RedisError> {
        let reused = self.lock().pop();
        match reused {
            Some(connection) => Ok((connection, true)),
            None => Ok((self.connect().await?, false)),
        }
    }

    pub(crate) async fn connect(&self) -> Result<MultiplexedConnection, RedisError> {
        self.client
            .get_multiplexed_async_connection_with_config(&self.config)
            .await
    }

    pub(crate) fn give_back(&self, connection: MultiplexedConnection) {
        let mut idle = self.lock();
        if idle.len() < MAX_IDLE {
            idle.push(connection);
        }
    }

    /// Drops every idle connection: after a connection error they are likely
    /// all broken (the server restarted).
    pub(crate) fn clear(&self) {
        self.lock().clear();
    }
}
