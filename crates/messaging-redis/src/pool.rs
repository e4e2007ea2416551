//! Connections for blocking reads.
//!
//! A blocked `XREADGROUP` holds its connection on the server until it returns, so
//! it cannot share the multiplexed connection everything else uses. Each blocking
//! read takes a connection of its own from here and gives it back only when the
//! read finished cleanly; a read that was cancelled or failed drops it, which
//! closes it and releases the server side. On a cluster each pooled connection
//! is a cluster connection of its own (one socket per master it reads from).

use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use redis::{AsyncConnectionConfig, Client, RedisError};

use crate::connection::{Connection, connect_cluster};

/// Idle connections kept for reuse.
const MAX_IDLE: usize = 64;

/// Where blocking connections are opened.
enum Source {
    Single(Box<(Client, AsyncConnectionConfig)>),
    Cluster {
        nodes: Vec<String>,
        connect_timeout: Duration,
    },
}

pub(crate) struct BlockingPool {
    source: Source,
    idle: Mutex<Vec<Connection>>,
}

impl BlockingPool {
    /// Connections to the one server of `client`.
    pub(crate) fn new(client: Client, connect_timeout: Duration) -> Self {
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(connect_timeout))
            // The caller bounds each read by its BLOCK time plus the command timeout.
            .set_response_timeout(None);
        Self::with_source(Source::Single(Box::new((client, config))))
    }

    /// Cluster connections to the cluster of these seed nodes.
    pub(crate) fn cluster(nodes: Vec<String>, connect_timeout: Duration) -> Self {
        Self::with_source(Source::Cluster {
            nodes,
            connect_timeout,
        })
    }

    fn with_source(source: Source) -> Self {
        Self {
            source,
            idle: Mutex::new(Vec::new()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Vec<Connection>> {
        self.idle
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// An idle connection (`true`: it may have broken while idle), or a new one.
    pub(crate) async fn take(&self) -> Result<(Connection, bool), RedisError> {
        let reused = self.lock().pop();
        match reused {
            Some(connection) => Ok((connection, true)),
            None => Ok((self.connect().await?, false)),
        }
    }

    pub(crate) async fn connect(&self) -> Result<Connection, RedisError> {
        match &self.source {
            Source::Single(single) => single
                .0
                .get_multiplexed_async_connection_with_config(&single.1)
                .await
                .map(Connection::Plain),
            Source::Cluster {
                nodes,
                connect_timeout,
            } => connect_cluster(nodes, *connect_timeout, None)
                .await
                .map(Connection::Cluster),
        }
    }

    pub(crate) fn give_back(&self, connection: Connection) {
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
