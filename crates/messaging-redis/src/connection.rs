//! One node or a Redis Cluster behind one connection type.
//!
//! [`Connection`] implements `redis::aio::ConnectionLike`, so every command,
//! script and single-slot pipeline of the backend runs unchanged on both. On a
//! cluster the `redis` crate's cluster client routes each command by its key's
//! slot, follows `MOVED` and `ASK` redirections and refreshes the slot map after
//! a failover or a slot migration. What differs is handled here:
//!
//! * a pipeline must stay within one slot on a cluster, so commands of several
//!   slots (a topic's script and the registry, one `ZRANGE` per topic of the
//!   sweep) go through [`Connection::query_each`]: one pipeline on a single node,
//!   concurrent commands (pipelined per node by the multiplexed connections) on a
//!   cluster;
//! * `SCAN` lists one node's keys, so [`Connection::scan_slot_of`] sends it to the
//!   master of the slot whose keys it looks for.

use std::time::Duration;

use futures::future::try_join_all;
use redis::aio::{ConnectionLike, ConnectionManager, MultiplexedConnection};
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr};
use redis::{Cmd, FromRedisValue, RedisError, RedisFuture, RedisResult, Value};

/// Where the backend's keys live, parsed from [`crate::RedisBackendConfig::url`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Topology {
    /// One server (`redis://`, `rediss://`, `redis+unix://`, `unix://`).
    Single(String),
    /// A Redis Cluster (`redis+cluster://` or `rediss+cluster://`): the seed
    /// nodes' URLs, each with the credentials of the cluster URL.
    Cluster(Vec<String>),
}

impl Topology {
    /// Parses a URL; a cluster URL is `redis+cluster://[user[:password]@]host:port[,host:port…]`
    /// (`rediss+cluster://` for TLS), with no database (a cluster has only 0).
    pub(crate) fn parse(url: &str) -> Result<Self, String> {
        let (scheme, rest) = match url.split_once("://") {
            Some((scheme @ ("redis+cluster" | "rediss+cluster"), rest)) => (scheme, rest),
            _ => return Ok(Self::Single(url.to_owned())),
        };
        let node_scheme = scheme.trim_end_matches("+cluster");
        let (credentials, hosts) = match rest.rsplit_once('@') {
            Some((credentials, hosts)) => (Some(credentials), hosts),
            None => (None, rest),
        };
        let (hosts, query) = match hosts.split_once('?') {
            Some((hosts, query)) => (hosts, Some(query)),
            None => (hosts, None),
        };
        let hosts = match hosts.split_once('/') {
            Some((hosts, "" | "0")) => hosts,
            Some((_, db)) => {
                return Err(format!(
                    "a Redis Cluster has only database 0; the URL asks for {db}"
                ));
            }
            None => hosts,
        };
        let mut nodes = Vec::new();
        for host in hosts.split(',') {
            let host = host.trim();
            if host.is_empty() {
                return Err("a cluster URL lists its seed nodes as host:port, separated by commas (an empty one was found)".to_owned());
            }
            let mut node = format!("{node_scheme}://");
            if let Some(credentials) = credentials {
                node.push_str(credentials);
                node.push('@');
            }
            node.push_str(host);
            if let Some(query) = query {
                node.push('?');
                node.push_str(query);
            }
            nodes.push(node);
        }
        Ok(Self::Cluster(nodes))
    }
}

/// A connection to one node or to a whole cluster.
#[derive(Clone)]
pub(crate) enum Connection {
    /// The reconnecting connection to one node everything but blocking reads use.
    Managed(ConnectionManager),
    /// A plain connection to one node, for one blocking read at a time.
    Plain(MultiplexedConnection),
    /// A cluster client's connection (to every master it needs).
    Cluster(ClusterConnection),
}

impl ConnectionLike for Connection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Managed(connection) => connection.req_packed_command(cmd),
            Self::Plain(connection) => connection.req_packed_command(cmd),
            Self::Cluster(connection) => connection.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Managed(connection) => connection.req_packed_commands(pipeline, offset, count),
            Self::Plain(connection) => connection.req_packed_commands(pipeline, offset, count),
            Self::Cluster(connection) => connection.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Managed(connection) => connection.get_db(),
            Self::Plain(connection) => connection.get_db(),
            Self::Cluster(connection) => connection.get_db(),
        }
    }
}

impl Connection {
    /// Whether this is a cluster connection.
    pub(crate) fn is_cluster(&self) -> bool {
        matches!(self, Self::Cluster(_))
    }

    /// Runs commands that may touch several slots and returns their replies in
    /// order: one pipeline (one round trip) on a single node, all at once on a
    /// cluster (the cluster client pipelines those of one node).
    pub(crate) async fn query_each<T: FromRedisValue>(
        &self,
        commands: &[Cmd],
    ) -> RedisResult<Vec<T>> {
        if commands.is_empty() {
            return Ok(Vec::new());
        }
        if self.is_cluster() {
            try_join_all(commands.iter().map(|command| {
                let mut connection = self.clone();
                async move { command.query_async::<T>(&mut connection).await }
            }))
            .await
        } else {
            let mut pipe = redis::pipe();
            for command in commands {
                pipe.add_command(command.clone());
            }
            pipe.query_async(&mut self.clone()).await
        }
    }

    /// `SCAN cursor MATCH pattern COUNT count` where the keys sharing `key`'s
    /// slot live: the one server, or the master of that slot on a cluster.
    pub(crate) async fn scan_slot_of(
        &self,
        key: &str,
        cursor: u64,
        pattern: &str,
        count: usize,
    ) -> RedisResult<(u64, Vec<String>)> {
        let mut command = redis::cmd("SCAN");
        command
            .arg(cursor)
            .arg("MATCH")
            .arg(pattern)
            .arg("COUNT")
            .arg(count);
        match self {
            Self::Cluster(connection) => {
                let routing = RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(
                    Route::with_key(key, SlotAddr::Master),
                ));
                let reply = connection.clone().route_command(command, routing).await?;
                redis::from_redis_value(reply).map_err(RedisError::from)
            }
            _ => command.query_async(&mut self.clone()).await,
        }
    }
}

/// Opens a cluster connection to `nodes` with these timeouts (`None`: no
/// response timeout, for blocking reads that the caller bounds itself).
pub(crate) async fn connect_cluster(
    nodes: &[String],
    connect_timeout: Duration,
    response_timeout: Option<Duration>,
) -> RedisResult<ClusterConnection> {
    let mut builder = redis::cluster::ClusterClientBuilder::new(nodes.to_vec())
        .connection_timeout(connect_timeout);
    if let Some(timeout) = response_timeout {
        builder = builder.response_timeout(timeout);
    }
    builder.build()?.get_async_connection().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_node_urls_stay_as_they_are() {
        for url in [
            "redis://127.0.0.1:6379",
            "rediss://u:p@host:6380/2",
            "redis+unix:///run/redis.sock",
        ] {
            assert_eq!(Topology::parse(url), Ok(Topology::Single(url.to_owned())));
        }
    }

    #[test]
    fn cluster_urls_list_their_seed_nodes_with_the_credentials() {
        assert_eq!(
            Topology::parse("redis+cluster://127.0.0.1:7101,127.0.0.1:7102"),
            Ok(Topology::Cluster(vec![
                "redis://127.0.0.1:7101".to_owned(),
                "redis://127.0.0.1:7102".to_owned()
            ]))
        );
        assert_eq!(
            Topology::parse("rediss+cluster://app:s3cret@a:1,b:2/0?insecure"),
            Ok(Topology::Cluster(vec![
                "rediss://app:s3cret@a:1?insecure".to_owned(),
                "rediss://app:s3cret@b:2?insecure".to_owned()
            ]))
        );
    }

    #[test]
    fn cluster_urls_refuse_a_database_and_empty_nodes() {
        assert!(Topology::parse("redis+cluster://a:1/3").is_err());
        assert!(Topology::parse("redis+cluster://a:1,,b:2").is_err());
        assert!(Topology::parse("redis+cluster://").is_err());
    }
}
