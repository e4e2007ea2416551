use std::time::Duration;

use messaging_core::{DEFAULT_TOPIC_CAP, Retention};

/// How to reach Redis and how to lay out and maintain the keys.
///
/// ```
/// use std::time::Duration;
/// use messaging_redis::{RedisBackendConfig, Retention};
///
/// let config = RedisBackendConfig::new("rediss://mailer:s3cret@redis.internal:6380/0")
///     .with_key_prefix("shop")
///     .with_retention(Retention::Settled { keep: 50_000 })
///     .with_topic_cap(2_000_000)
///     .with_command_timeout(Duration::from_secs(2));
/// assert_eq!(config.key_prefix, "shop");
/// // The password never shows in logs.
/// assert!(!format!("{config:?}").contains("s3cret"));
/// ```
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RedisBackendConfig {
    /// One server: `redis://[user[:password]@]host[:port][/db]`, or `rediss://`
    /// for TLS (feature `tls`, on by default). A Redis Cluster:
    /// `redis+cluster://[user[:password]@]host:port[,host:port…]` (or
    /// `rediss+cluster://`), listing some of its nodes (the client finds the
    /// rest, follows `MOVED`/`ASK` and the slot map after failovers); the
    /// credentials and TLS apply to every node. See [`Self::cluster`].
    pub url: String,
    /// Put before every key, so several applications share one Redis. Must not
    /// contain `{`, `}` or whitespace. Two backends with the same prefix share
    /// their topics.
    pub key_prefix: String,
    /// What trimming may remove from a topic's stream. The default,
    /// [`Retention::Settled`] keeping 10,000, is lossless: only entries every
    /// consumer group has read and settled go, and a topic with no group keeps
    /// everything. [`Retention::DropUnreadAfter`] is lossy (see `docs/redis.md`).
    pub retention: Retention,
    /// The most messages a topic holds (stream entries, settled ones not yet
    /// trimmed included, plus delayed messages); `publish`, `publish_batch` and
    /// `schedule` beyond it fail with `BackendError::QueueFull`. Default
    /// [`DEFAULT_TOPIC_CAP`] (1,000,000).
    pub topic_cap: usize,
    /// How long establishing a connection may take.
    pub connect_timeout: Duration,
    /// How long a command (other than a blocking read) may take before it fails
    /// as unavailable.
    pub command_timeout: Duration,
    /// How often the due index (one sorted set per prefix, scored by each
    /// topic's earliest delayed message) is read for topics with messages that
    /// fell due, whoever scheduled them: one small script call per interval
    /// whatever the number of topics (sooner when the index says the next one
    /// is due sooner). Messages this process schedules or retries are promoted
    /// at their due time regardless.
    pub promote_interval: Duration,
    /// How often the topics this process wrote to or settled on since their
    /// last trim are trimmed as `retention` allows; idle topics cost nothing.
    pub trim_interval: Duration,
    /// How often the due index is rebuilt from every topic's delayed set, the
    /// safety net for an index entry a crash left unwritten (see
    /// `docs/redis.md`). One process per prefix sweeps per interval (the
    /// others find its `P:sweep` lock taken); a sweep reads one small `ZRANGE`
    /// per registered topic, pipelined. Default 60 s.
    pub sweep_interval: Duration,
    /// Replicas that must have each publish (and schedule) before it returns
    /// `Ok`: after the script the backend sends `WAIT replicas timeout` to the
    /// same node, and fewer acknowledgements within the timeout fail the call
    /// with [`crate::NotReplicated`]. `None` (the default): a publish returns
    /// once the primary wrote it, and a failover can lose the last writes the
    /// replica had not received (see `docs/redis.md`, "Redis Cluster"). Set with
    /// [`Self::with_replica_acks`].
    pub replica_acks: Option<ReplicaAcks>,
}

/// How many replicas must acknowledge a publish, and how long the primary
/// waits for them (see [`RedisBackendConfig::with_replica_acks`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReplicaAcks {
    /// Replicas that must have the write.
    pub replicas: usize,
    /// The longest the primary waits for them (`WAIT`'s timeout).
    pub timeout: Duration,
}

impl std::fmt::Debug for RedisBackendConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisBackendConfig")
            .field("url", &redact_password(&self.url))
            .field("key_prefix", &self.key_prefix)
            .field("retention", &self.retention)
            .field("topic_cap", &self.topic_cap)
            .field("connect_timeout", &self.connect_timeout)
            .field("command_timeout", &self.command_timeout)
            .field("promote_interval", &self.promote_interval)
            .field("trim_interval", &self.trim_interval)
            .field("sweep_interval", &self.sweep_interval)
            .field("replica_acks", &self.replica_acks)
            .finish()
    }
}

impl Default for RedisBackendConfig {
    /// `redis://127.0.0.1:6379`, prefix `messaging`, lossless retention keeping
    /// 10,000 settled entries, a cap of 1,000,000 messages per topic.
    fn default() -> Self {
        Self {
            url: "redis://127.0.0.1:6379".to_owned(),
            key_prefix: "messaging".to_owned(),
            retention: Retention::default(),
            topic_cap: DEFAULT_TOPIC_CAP,
            connect_timeout: Duration::from_secs(2),
            command_timeout: Duration::from_secs(5),
            promote_interval: Duration::from_millis(250),
            trim_interval: Duration::from_secs(5),
            sweep_interval: Duration::from_secs(60),
            replica_acks: None,
        }
    }
}

impl RedisBackendConfig {
    /// The defaults with `url`.
    pub fn new(url: impl Into<String>) -> Self {
        Self::default().with_url(url)
    }

    /// The defaults on the Redis Cluster of these seed nodes (`host:port`
    /// each): the URL `redis+cluster://host:port,…`. Add credentials or TLS by
    /// writing the URL yourself (`rediss+cluster://user:password@host:port,…`).
    ///
    /// ```
    /// use messaging_redis::RedisBackendConfig;
    ///
    /// let config = RedisBackendConfig::cluster(["10.0.0.1:7000", "10.0.0.2:7000"]);
    /// assert_eq!(config.url, "redis+cluster://10.0.0.1:7000,10.0.0.2:7000");
    /// ```
    pub fn cluster<I, S>(nodes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let nodes: Vec<String> = nodes
            .into_iter()
            .map(|node| node.as_ref().to_owned())
            .collect();
        Self::new(format!("redis+cluster://{}", nodes.join(",")))
    }

    /// Sets the server URL.
    pub fn with_url(mut self, url: impl Into<String>) -> Self {
        self.url = url.into();
        self
    }

    /// Sets the key prefix.
    pub fn with_key_prefix(mut self, key_prefix: impl Into<String>) -> Self {
        self.key_prefix = key_prefix.into();
        self
    }

    /// Sets what trimming may remove ([`Retention::DropUnreadAfter`] is lossy).
    pub fn with_retention(mut self, retention: Retention) -> Self {
        self.retention = retention;
        self
    }

    /// Sets the most messages a topic holds before publishing is refused.
    pub fn with_topic_cap(mut self, topic_cap: usize) -> Self {
        self.topic_cap = topic_cap;
        self
    }

    /// Sets the connection timeout.
    pub fn with_connect_timeout(mut self, connect_timeout: Duration) -> Self {
        self.connect_timeout = connect_timeout;
        self
    }

    /// Sets the command timeout.
    pub fn with_command_timeout(mut self, command_timeout: Duration) -> Self {
        self.command_timeout = command_timeout;
        self
    }

    /// Sets how often the due index is read for delayed messages that fell due.
    pub fn with_promote_interval(mut self, promote_interval: Duration) -> Self {
        self.promote_interval = promote_interval;
        self
    }

    /// Sets how often topics with writes or settlements since their last trim
    /// are trimmed.
    pub fn with_trim_interval(mut self, trim_interval: Duration) -> Self {
        self.trim_interval = trim_interval;
        self
    }

    /// Sets how often the due index is rebuilt from every topic's delayed set
    /// (by one process per prefix).
    pub fn with_sweep_interval(mut self, sweep_interval: Duration) -> Self {
        self.sweep_interval = sweep_interval;
        self
    }

    /// Makes every publish, publish batch and schedule wait until `replicas`
    /// replicas acknowledged it (`WAIT replicas timeout` on the node that
    /// wrote it, in the same round trip), failing with
    /// [`crate::NotReplicated`] (as `BackendError::Unavailable`) when fewer did
    /// within `timeout`. A failover then loses no publish that returned `Ok`,
    /// as long as the promoted replica is one that acknowledged. (Publishes
    /// with a unique key and schedule ticks do not wait.)
    ///
    /// `replicas` must be at least 1 and `timeout` more than zero and less
    /// than the command timeout ([`RedisBackend::connect`](crate::RedisBackend::connect)
    /// refuses the configuration with `BackendError::InvalidConfig`
    /// otherwise). A `WAIT` holds its connection: while the replicas lag or
    /// are down, the commands to that node queue behind each publish for up
    /// to `timeout`.
    ///
    /// ```
    /// use std::time::Duration;
    /// use messaging_redis::RedisBackendConfig;
    ///
    /// let config = RedisBackendConfig::cluster(["10.0.0.1:7000"])
    ///     .with_replica_acks(1, Duration::from_millis(500));
    /// assert_eq!(config.replica_acks.map(|acks| acks.replicas), Some(1));
    /// ```
    pub fn with_replica_acks(mut self, replicas: usize, timeout: Duration) -> Self {
        self.replica_acks = Some(ReplicaAcks { replicas, timeout });
        self
    }

    /// Checks what can be checked without a server.
    pub(crate) fn check(&self) -> Result<(), &'static str> {
        // The alphabet of topic names, without ':': a prefix holding ':' would
        // nest (`shop` + topic `eu:orders` = `shop:eu` + `orders`), and the ACL
        // pattern `~{shop:*` would match another tenant's keys.
        if self.key_prefix.is_empty()
            || self.key_prefix.len() > 64
            || !self
                .key_prefix
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        {
            return Err(
                "the key prefix must be 1 to 64 of [A-Za-z0-9._-] (no ':', braces or spaces, so tenants cannot nest)",
            );
        }
        if self.topic_cap == 0 {
            return Err("topic_cap must be at least 1");
        }
        if self.promote_interval.is_zero()
            || self.trim_interval.is_zero()
            || self.sweep_interval.is_zero()
        {
            return Err("promote_interval, trim_interval and sweep_interval must not be zero");
        }
        if let Some(acks) = self.replica_acks {
            if acks.replicas == 0 {
                return Err("replica_acks: replicas must be at least 1");
            }
            // WAIT with timeout 0 blocks for ever.
            if acks.timeout.is_zero() || acks.timeout >= self.command_timeout {
                return Err(
                    "replica_acks: the timeout must be more than zero and less than command_timeout (the WAIT would outlast the command)",
                );
            }
        }
        // The sweep lock's expiry is a PX in milliseconds.
        if self.sweep_interval > Duration::from_secs(365 * 24 * 3600) {
            return Err("sweep_interval must be at most a year");
        }
        Ok(())
    }
}

/// The URL with its password (and secret query values) replaced by `***`.
fn redact_password(url: &str) -> String {
    messaging_model::redact_url(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_passwords_in_debug_output() {
        for (url, shown) in [
            ("redis://127.0.0.1:6379", "redis://127.0.0.1:6379"),
            ("redis://user:pw@host:1/0", "redis://user:***@host:1/0"),
            ("rediss://:pw@host", "rediss://:***@host"),
            ("redis://pw@host", "redis://***@host"),
            (
                "redis://app:Zx9/Qm+kL2@h:6379/0",
                "redis://app:***@h:6379/0",
            ),
            (
                "redis+unix:///run/r.sock?pass=pw",
                "redis+unix:///run/r.sock?pass=***",
            ),
            (
                "redis+cluster://app:pw@a:7001,b:7002",
                "redis+cluster://app:***@a:7001,b:7002",
            ),
        ] {
            assert_eq!(redact_password(url), shown);
        }
    }

    #[test]
    fn replica_acks_must_ask_for_a_replica_and_wait_less_than_a_command() {
        let config = RedisBackendConfig::default().with_command_timeout(Duration::from_secs(2));
        assert!(
            config
                .clone()
                .with_replica_acks(1, Duration::from_millis(500))
                .check()
                .is_ok()
        );
        for (replicas, timeout) in [
            (0, Duration::from_millis(500)),
            (1, Duration::ZERO),
            (1, Duration::from_secs(2)),
            (1, Duration::from_secs(3)),
        ] {
            assert!(
                config
                    .clone()
                    .with_replica_acks(replicas, timeout)
                    .check()
                    .is_err(),
                "{replicas} replicas, {timeout:?}"
            );
        }
    }

    #[test]
    fn rejects_prefixes_that_break_the_hash_tag() {
        for bad in ["", "a{b", "a}b", "a b", "shop:eu", "a\nb", &"x".repeat(65)] {
            assert!(
                RedisBackendConfig::default()
                    .with_key_prefix(bad)
                    .check()
                    .is_err()
            );
        }
        assert!(
            RedisBackendConfig::default()
                .with_key_prefix("shop.eu-1_a")
                .check()
                .is_ok()
        );
    }
}
