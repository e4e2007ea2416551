use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use chrono::{DateTime, Utc};
use messaging_core::{BackendError, DeadLetter, Receipt, Retention, Settlement, StartFrom};
use messaging_model::Message;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Client, ErrorKind, RedisError, Script, ServerErrorKind, Value};
use tracing::warn;

use crate::RedisBackendConfig;
use crate::acks::{self, AckSender};
use crate::codec;
use crate::error::{backend_error, is_busy_group};
use crate::keys::Keys;
use crate::maintenance::{self, PROMOTE_BATCH, Schedule};
use crate::pool::BlockingPool;
use crate::scripts::SCRIPTS;

/// Most entries one trim removes, which bounds how long the script runs.
const TRIM_BATCH: i64 = 1_000;

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

pub(crate) struct Inner {
    pub(crate) config: RedisBackendConfig,
    pub(crate) keys: Keys,
    connection: ConnectionManager,
    pub(crate) blocking: BlockingPool,
    pub(crate) schedule: Arc<Schedule>,
    pub(crate) acks: AckSender,
    /// Where the next XAUTOCLAIM of each (topic, group) starts.
    reclaim_cursors: Mutex<HashMap<(String, String), String>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.schedule.close();
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
        let client = Client::open(config.url.as_str()).map_err(BackendError::command)?;
        // One plain attempt first, so an unreachable server or a wrong password
        // is reported now rather than after the connection manager's retries.
        let blocking = BlockingPool::new(client.clone(), config.connect_timeout);
        let first = blocking.connect().await.map_err(backend_error)?;
        blocking.give_back(first);
        let manager_config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(config.connect_timeout))
            .set_response_timeout(Some(config.command_timeout))
            .set_max_delay(Duration::from_secs(2));
        let connection = ConnectionManager::new_with_config(client.clone(), manager_config)
            .await
            .map_err(backend_error)?;
        let schedule = Arc::new(Schedule::default());
        let (acks, ack_requests) = acks::channel();
        let inner = Arc::new(Inner {
            acks,
            keys: Keys::new(&config.key_prefix),
            blocking,
            config,
            connection,
            schedule: schedule.clone(),
            reclaim_cursors: Mutex::new(HashMap::new()),
        });
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

/// One page of a topic's dead-letter stream ([`RedisBackend::dead_letter_page`]).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct DeadLetterPage {
    /// The page's dead letters, oldest first.
    pub dead_letters: Vec<DeadLetter>,
    /// The page's entries that are no dead letter this backend can read
    /// (written to the stream by something else): reported, never replayed,
    /// removed only by a purge.
    pub undecodable: Vec<UndecodableDeadLetter>,
    /// Where the next page starts (the `after` of the next call), or `None`
    /// when this page reached the end of the stream.
    pub next: Option<String>,
}

/// An entry of a dead-letter stream that cannot be read as a dead letter.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct UndecodableDeadLetter {
    /// Its id in the dead-letter stream.
    pub id: String,
    /// Why it cannot be read (the field it lacks or cannot parse).
    pub reason: String,
}

/// Most entries `dead_letters` reads in one round trip while it pages past
/// entries it cannot read.
pub(crate) const MAX_DEAD_LETTER_PAGE: usize = 1_000;

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

impl Inner {
    pub(crate) fn connection(&self) -> ConnectionManager {
        self.connection.clone()
    }

    pub(crate) fn cursors(&self) -> MutexGuard<'_, HashMap<(String, String), String>> {
        self.reclaim_cursors
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Trims a topic's stream; true when there is more to trim right away.
    pub(crate) async fn trim(&self, topic: &str) -> Result<bool, BackendError> {
        Ok(self.trim_once(topic).await? >= TRIM_BATCH)
    }

    /// One trimming step as the retention allows; how many entries it removed.
    pub(crate) async fn trim_once(&self, topic: &str) -> Result<i64, BackendError> {
        let (keep, mode) = match self.config.retention {
            Retention::Settled { keep } => (keep, "settled"),
            Retention::DropUnreadAfter { len } => (len, "unread"),
            _ => return Ok(0),
        };
        let keys = self.keys.topic(topic);
        SCRIPTS
            .trim
            .key(&keys.stream)
            .arg(keep)
            .arg(TRIM_BATCH)
            .arg(mode)
            .invoke_async(&mut self.connection())
            .await
            .map_err(backend_error)
    }

    /// Runs `script` (publish.lua or schedule.lua: KEYS stream and delayed set,
    /// ARGV the cap then `args`) with the topic's registration in the same
    /// round trip. A refusal (an integer reply, what the topic holds) is first
    /// met with a trimming step, since settled entries may be waiting for the
    /// next round, and one more try; then it is `QueueFull`.
    pub(crate) async fn capped(
        &self,
        script: &Script,
        topic: &str,
        args: &[&[u8]],
        written: usize,
    ) -> Result<Value, BackendError> {
        let keys = self.keys.topic(topic);
        let mut trimmed = false;
        let mut loaded = false;
        loop {
            let mut pipe = redis::pipe();
            pipe.cmd("EVALSHA")
                .arg(script.get_hash())
                .arg(2)
                .arg(&keys.stream)
                .arg(&keys.delayed)
                .arg(self.config.topic_cap);
            for arg in args {
                pipe.arg(*arg);
            }
            pipe.cmd("SADD")
                .arg(self.keys.registry())
                .arg(topic)
                .ignore();
            let reply: Result<(Value,), RedisError> =
                pipe.query_async(&mut self.connection()).await;
            match reply {
                Ok((Value::Int(_),)) if !trimmed => {
                    trimmed = true;
                    if self.trim_once(topic).await? == 0 {
                        break;
                    }
                }
                Ok((Value::Int(_),)) => break,
                Ok((value,)) => return Ok(value),
                Err(error)
                    if !loaded && error.kind() == ErrorKind::Server(ServerErrorKind::NoScript) =>
                {
                    loaded = true;
                    let _: String = script
                        .load_async(&mut self.connection())
                        .await
                        .map_err(backend_error)?;
                }
                Err(error) => return Err(backend_error(error)),
            }
        }
        Err(BackendError::QueueFull {
            topic: topic.to_owned(),
            cap: self.config.topic_cap as u64,
            written,
        })
    }

    /// Appends messages of one topic, all or none against its cap.
    pub(crate) async fn append(
        &self,
        topic: &str,
        jsons: &[Vec<u8>],
        written: usize,
    ) -> Result<Vec<String>, BackendError> {
        let args: Vec<&[u8]> = jsons.iter().map(Vec::as_slice).collect();
        let value = self.capped(&SCRIPTS.publish, topic, &args, written).await?;
        let ids: Vec<String> = redis::from_redis_value(value).map_err(BackendError::command)?;
        // The stream grew: settled entries past what the retention keeps (or,
        // with DropUnreadAfter, any) may be trimmable now.
        self.touched(topic);
        Ok(ids)
    }

    pub(crate) async fn register(&self, topic: &str) -> Result<(), BackendError> {
        let _: i64 = redis::cmd("SADD")
            .arg(self.keys.registry())
            .arg(topic)
            .query_async(&mut self.connection())
            .await
            .map_err(backend_error)?;
        Ok(())
    }

    /// Right after a delayed message was added to `topic`'s delayed set with
    /// `score`: lowers the topic's due-index entry to it, so every process's
    /// next read of the index finds it. A command of its own after the
    /// script's reply (the index is in another hash slot). A failure is logged,
    /// not returned: the message is scheduled, this process's own timer still
    /// promotes it, and the sweep restores the entry.
    pub(crate) async fn indexed(&self, topic: &str, score: i64) {
        if let Err(error) = self.index_due(topic, score).await {
            warn!(%topic, %error, "adding a delayed message to the due index failed; this process promotes it at its time, and the next sweep indexes it");
        }
    }

    pub(crate) async fn create_group(
        &self,
        topic: &str,
        group: &str,
        start: StartFrom,
    ) -> Result<(), BackendError> {
        let keys = self.keys.topic(topic);
        let start = match start {
            StartFrom::Earliest => "0",
            StartFrom::Latest => "$",
        };
        let created: Result<(), RedisError> = redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(&keys.stream)
            .arg(group)
            .arg(start)
            .arg("MKSTREAM")
            .query_async(&mut self.connection())
            .await;
        match created {
            Ok(()) => Ok(()),
            Err(error) if is_busy_group(&error) => Ok(()),
            Err(error) => Err(backend_error(error)),
        }
    }

    /// After NOGROUP (the topic or the group was deleted, or a Redis without
    /// persistence restarted): recreate the group from the start of what is there.
    pub(crate) async fn recover_group(&self, topic: &str, group: &str) -> Result<(), BackendError> {
        warn!(%topic, %group, "consumer group missing (topic deleted or Redis restarted); recreating it");
        self.register(topic).await?;
        self.create_group(topic, group, StartFrom::Earliest).await
    }

    /// Acknowledges receipts of one topic and group in one fenced script call;
    /// true for each that was still owned, in the order given.
    pub(crate) async fn ack_many(&self, receipts: &[&Receipt]) -> Result<Vec<bool>, RedisError> {
        let Some(first) = receipts.first() else {
            return Ok(Vec::new());
        };
        // Blocks of one consumer each, ids ascending (see lua/ack.lua).
        let mut order: Vec<usize> = (0..receipts.len()).collect();
        order.sort_by_cached_key(|&index| {
            let receipt = receipts[index];
            (
                receipt.consumer.consumer.as_str(),
                codec::id_order(&receipt.entry_id),
            )
        });
        let keys = self.keys.topic(first.topic());
        let mut invocation = SCRIPTS.ack.key(&keys.stream);
        invocation.arg(first.group());
        for block in
            order.chunk_by(|&a, &b| receipts[a].consumer.consumer == receipts[b].consumer.consumer)
        {
            let low = receipts[block[0]];
            let high = receipts[block[block.len() - 1]];
            invocation
                .arg(&low.consumer.consumer)
                .arg(block.len())
                .arg(&low.entry_id)
                .arg(&high.entry_id);
            for &index in block {
                invocation
                    .arg(&receipts[index].entry_id)
                    .arg(receipts[index].delivery_count);
            }
        }
        let settled: Vec<i64> = invocation.invoke_async(&mut self.connection()).await?;
        if settled.contains(&1) {
            self.touched(first.topic());
        }
        let mut owned = vec![false; receipts.len()];
        for (&index, done) in order.iter().zip(settled) {
            owned[index] = done == 1;
        }
        Ok(owned)
    }

    pub(crate) async fn dead_letter_page(
        &self,
        topic: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<DeadLetterPage, BackendError> {
        let start = match after {
            None => "-".to_owned(),
            Some(id) if codec::is_stream_id(id) => format!("({id}"),
            Some(_) => {
                return Err(BackendError::command(
                    "`after` is no dead-letter id (<ms>-<seq>)",
                ));
            }
        };
        let mut page = DeadLetterPage {
            dead_letters: Vec::new(),
            undecodable: Vec::new(),
            next: None,
        };
        if limit == 0 {
            page.next = after.map(str::to_owned);
            return Ok(page);
        }
        let keys = self.keys.topic(topic);
        let reply: Value = redis::cmd("XRANGE")
            .arg(&keys.dead)
            .arg(start)
            .arg("+")
            .arg("COUNT")
            .arg(limit)
            .query_async(&mut self.connection())
            .await
            .map_err(backend_error)?;
        let entries = codec::entries(reply);
        if entries.len() >= limit {
            page.next = entries.last().map(|(id, _)| id.clone());
        }
        for (id, fields) in entries {
            match codec::decode_dead_letter(&id, &fields) {
                Ok(dead) => page.dead_letters.push(dead),
                Err(reason) => page.undecodable.push(UndecodableDeadLetter { id, reason }),
            }
        }
        Ok(page)
    }

    pub(crate) async fn dead_letter_as(
        &self,
        receipt: &Receipt,
        message: &Message,
        error: &str,
        attempts: u32,
    ) -> Result<Settlement, BackendError> {
        let json = codec::encode(message)?;
        let done = self
            .dead_letter_entry(
                receipt.topic(),
                receipt.group(),
                &receipt.consumer.consumer,
                &receipt.entry_id,
                i64::from(receipt.delivery_count),
                &json,
                error,
                attempts,
            )
            .await?;
        Ok(settlement(receipt, "dead-letter", done))
    }

    /// Runs `lua/dead_letter.lua`: acknowledges the entry and appends `json` to
    /// the dead-letter stream if `consumer` still holds it with exactly
    /// `delivery_count` deliveries (as Redis counts them, which may be past a
    /// [`Receipt`]'s range). True when done.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn dead_letter_entry(
        &self,
        topic: &str,
        group: &str,
        consumer: &str,
        entry_id: &str,
        delivery_count: i64,
        json: &[u8],
        error: &str,
        attempts: u32,
    ) -> Result<bool, BackendError> {
        let keys = self.keys.topic(topic);
        let done: i64 = SCRIPTS
            .dead_letter
            .key(&keys.stream)
            .key(&keys.dead)
            .arg(group)
            .arg(consumer)
            .arg(entry_id)
            .arg(delivery_count)
            .arg(json)
            .arg(error)
            .arg(attempts)
            .invoke_async(&mut self.connection())
            .await
            .map_err(backend_error)?;
        if done == 1 {
            self.touched(topic);
        }
        Ok(done == 1)
    }
}

/// Settled, or lost ownership (logged: the caller was too slow and another
/// consumer took the delivery over).
pub(crate) fn settlement(receipt: &Receipt, action: &'static str, done: bool) -> Settlement {
    if done {
        return Settlement::Settled;
    }
    warn!(
        topic = %receipt.consumer.topic,
        group = %receipt.consumer.group,
        consumer = %receipt.consumer.consumer,
        entry = %receipt.entry_id,
        delivery = receipt.delivery_count,
        action,
        "fenced: the delivery was reclaimed by another consumer, so this one changes nothing"
    );
    Settlement::LostOwnership
}

/// The delayed-set score of a due time: milliseconds, rounded up so a message is
/// never promoted before its time.
pub(crate) fn due_score(at: DateTime<Utc>) -> i64 {
    at.timestamp_micros().saturating_add(999).div_euclid(1000)
}

/// The delayed-set member of a message: a nonce keeps two schedules of the same
/// message apart.
pub(crate) fn delayed_member(message: &Message) -> Result<Vec<u8>, BackendError> {
    let mut member = uuid::Uuid::now_v7().simple().to_string().into_bytes();
    member.push(b'|');
    member.extend(codec::encode(message)?);
    Ok(member)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn due_scores_round_up_to_the_millisecond() {
        let at = DateTime::from_timestamp_micros(1_000_000_001).unwrap();
        assert_eq!(due_score(at), 1_000_001);
        let exact = DateTime::from_timestamp_micros(1_000_000_000).unwrap();
        assert_eq!(due_score(exact), 1_000_000);
    }

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
