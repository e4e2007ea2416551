//! The key layout (see `docs/redis.md`).
//!
//! Every key of a topic carries the hash tag `{<prefix>:<topic>}`, so they share
//! one Redis Cluster slot and each script touches a single slot. Topic names are
//! restricted to `[A-Za-z0-9._-]` and prefixes may not hold braces, so the tag is
//! unambiguous. The keys of a whole prefix (`P:topics`, `P:due`, `P:sweep`)
//! carry no hash tag and are only written by plain commands, never inside a
//! topic's script.

/// Names of the keys under one prefix.
#[derive(Debug, Clone)]
pub(crate) struct Keys {
    prefix: String,
    registry: String,
    /// Hash of partitioned topics: topic name → partition count.
    partitions: String,
    schedules: String,
    due_index: String,
    sweep_lock: String,
}

/// The keys of one topic.
#[derive(Debug, Clone)]
pub(crate) struct TopicKeys {
    /// The stream of entries, field `m` holding the message JSON.
    pub(crate) stream: String,
    /// The sorted set of delayed messages and retries (score: due time in ms).
    pub(crate) delayed: String,
    /// The dead-letter stream.
    pub(crate) dead: String,
    /// The set of paused groups (`group:<name>`, and `*` for the whole topic).
    pub(crate) paused: String,
}

impl Keys {
    pub(crate) fn new(prefix: &str) -> Self {
        Self {
            prefix: prefix.to_owned(),
            registry: format!("{prefix}:topics"),
            partitions: format!("{prefix}:partitions"),
            schedules: format!("{prefix}:schedules"),
            due_index: format!("{prefix}:due"),
            sweep_lock: format!("{prefix}:sweep"),
        }
    }

    /// The due index: a sorted set of topic names, each scored at most the
    /// earliest due time (ms) in its delayed set (see `maintenance.rs`).
    pub(crate) fn due_index(&self) -> &str {
        &self.due_index
    }

    /// Taken (`SET NX PX`) by the process that sweeps the due index, so one
    /// process per prefix sweeps per sweep interval.
    pub(crate) fn sweep_lock(&self) -> &str {
        &self.sweep_lock
    }

    /// The hash of every schedule's definition (JSON), by name.
    pub(crate) fn schedules(&self) -> &str {
        &self.schedules
    }

    /// The mark of schedule `name` (the last tick published or skipped, in ms):
    /// in its topic's slot, so a tick's publish and its mark are one script.
    pub(crate) fn schedule_mark(&self, topic: &str, name: &str) -> String {
        format!("{{{}:{topic}}}:tick:{name}", self.prefix)
    }

    /// The lock of unique key `key` of `topic` (value: the holder's id), in
    /// the topic's slot so the claim and the publish are one script.
    pub(crate) fn unique_lock(&self, topic: &str, key: &str) -> String {
        format!("{{{}:{topic}}}:unique:{key}", self.prefix)
    }

    /// The set of every topic's name.
    /// The partition counts of partitioned topics (a hash, topic → count).
    /// The state of a rate limit's bucket (see `limits.rs`), in a slot of
    /// its own.
    pub(crate) fn limit_rate(&self, limit: &str, key: &str) -> String {
        format!("{{{}:limit:{limit}:{key}}}:rate", self.prefix)
    }

    /// The holders of a concurrency limit's bucket, in a slot of its own.
    pub(crate) fn limit_slots(&self, limit: &str, key: &str) -> String {
        format!("{{{}:limit:{limit}:{key}}}:slots", self.prefix)
    }

    pub(crate) fn partitions(&self) -> &str {
        &self.partitions
    }

    pub(crate) fn registry(&self) -> &str {
        &self.registry
    }

    pub(crate) fn topic(&self, topic: &str) -> TopicKeys {
        let tag = format!("{{{}:{topic}}}", self.prefix);
        TopicKeys {
            stream: format!("{tag}:stream"),
            delayed: format!("{tag}:delayed"),
            dead: format!("{tag}:dlq"),
            paused: format!("{tag}:paused"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_of_a_topic_share_one_hash_tag() {
        let keys = Keys::new("shop");
        let topic = keys.topic("orders.placed");
        assert_eq!(topic.stream, "{shop:orders.placed}:stream");
        assert_eq!(topic.delayed, "{shop:orders.placed}:delayed");
        assert_eq!(topic.dead, "{shop:orders.placed}:dlq");
        assert_eq!(topic.paused, "{shop:orders.placed}:paused");
        assert_eq!(keys.registry(), "shop:topics");
        assert_eq!(keys.due_index(), "shop:due");
        assert_eq!(keys.sweep_lock(), "shop:sweep");
    }
}
