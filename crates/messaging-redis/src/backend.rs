use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use messaging_core::{
    BackendError, BackendHealth, DeadLetter, Delivery, GroupStats, MessageBackend, ReadFrom,
    Receipt, Retention, Settlement, StartFrom, TopicStats,
};
use messaging_model::{Message, MessageStatus};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Client, ErrorKind, RedisError, Script, ServerErrorKind, Value};
use tracing::warn;

use crate::RedisBackendConfig;
use crate::acks::{self, AckRequest, AckSender};
use crate::codec;
use crate::error::{InvalidConfig, backend_error, is_busy_group};
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
    acks: AckSender,
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
            .map_err(|reason| BackendError::command(InvalidConfig { reason }))?;
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
const MAX_DEAD_LETTER_PAGE: usize = 1_000;

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
        messaging_model::validate_topic(topic)?;
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
    async fn trim_once(&self, topic: &str) -> Result<i64, BackendError> {
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
    async fn capped(
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
    async fn append(
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

    async fn register(&self, topic: &str) -> Result<(), BackendError> {
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

    async fn create_group(
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
                receipt.consumer.as_str(),
                codec::id_order(&receipt.entry_id),
            )
        });
        let keys = self.keys.topic(&first.topic);
        let mut invocation = SCRIPTS.ack.key(&keys.stream);
        invocation.arg(&first.group);
        for block in order.chunk_by(|&a, &b| receipts[a].consumer == receipts[b].consumer) {
            let low = receipts[block[0]];
            let high = receipts[block[block.len() - 1]];
            invocation
                .arg(&low.consumer)
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
            self.touched(&first.topic);
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
                &receipt.topic,
                &receipt.group,
                &receipt.consumer,
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
fn settlement(receipt: &Receipt, action: &'static str, done: bool) -> Settlement {
    if done {
        return Settlement::Settled;
    }
    warn!(
        topic = %receipt.topic,
        group = %receipt.group,
        consumer = %receipt.consumer,
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

#[async_trait]
impl MessageBackend for RedisBackend {
    fn name(&self) -> &'static str {
        "redis"
    }

    async fn publish(&self, message: &Message) -> Result<String, BackendError> {
        let json = codec::encode_valid(message)?;
        let ids = self.inner.append(&message.topic, &[json], 0).await?;
        ids.into_iter()
            .next()
            .ok_or_else(|| BackendError::command("publish.lua returned no entry id"))
    }

    async fn publish_batch(&self, messages: &[Message]) -> Result<Vec<String>, BackendError> {
        // Every message is checked before anything is sent.
        let encoded = messages
            .iter()
            .map(codec::encode_valid)
            .collect::<Result<Vec<_>, _>>()?;
        if messages.is_empty() {
            return Ok(Vec::new());
        }
        // One script call per run of consecutive messages of one topic: all or
        // none of the run against the topic's cap; the first refusal ends it.
        let mut ids = Vec::with_capacity(messages.len());
        let mut encoded = encoded.into_iter();
        for run in messages.chunk_by(|a, b| a.topic == b.topic) {
            let jsons: Vec<Vec<u8>> = encoded.by_ref().take(run.len()).collect();
            let written = ids.len();
            ids.extend(self.inner.append(&run[0].topic, &jsons, written).await?);
        }
        Ok(ids)
    }

    async fn schedule(
        &self,
        message: &Message,
        deliver_at: DateTime<Utc>,
    ) -> Result<(), BackendError> {
        message.validate()?;
        let inner = &self.inner;
        let mut pending = message.clone();
        pending.status = MessageStatus::Pending;
        let score = due_score(deliver_at);
        let member = delayed_member(&pending)?;
        inner
            .capped(
                &SCRIPTS.schedule,
                &message.topic,
                &[score.to_string().as_bytes(), &member],
                0,
            )
            .await?;
        inner.indexed(&message.topic, score).await;
        inner.schedule.due_at(&message.topic, deliver_at);
        Ok(())
    }

    async fn create_topic(&self, topic: &str) -> Result<(), BackendError> {
        // Checked here too: through the trait, a name with ':' reached
        // another tenant's keys (prefix `shop` + topic `eu:orders`).
        messaging_model::validate_topic(topic)?;
        self.inner.register(topic).await
    }

    async fn delete_topic(&self, topic: &str) -> Result<bool, BackendError> {
        messaging_model::validate_topic(topic)?;
        let inner = &self.inner;
        let keys = inner.keys.topic(topic);
        let (deleted, unregistered): (i64, i64) = redis::pipe()
            .cmd("DEL")
            .arg(&keys.stream)
            .arg(&keys.delayed)
            .arg(&keys.dead)
            .cmd("SREM")
            .arg(inner.keys.registry())
            .arg(topic)
            .cmd("ZREM")
            .arg(inner.keys.due_index())
            .arg(topic)
            .ignore()
            .query_async(&mut inner.connection())
            .await
            .map_err(backend_error)?;
        // The topic's unique-key locks and schedule marks go with it.
        let tag = keys.stream.trim_end_matches(":stream");
        let mut extras = Vec::new();
        for pattern in [format!("{tag}:unique:*"), format!("{tag}:tick:*")] {
            let mut cursor = 0u64;
            loop {
                let (next, found): (u64, Vec<String>) = redis::cmd("SCAN")
                    .arg(cursor)
                    .arg("MATCH")
                    .arg(&pattern)
                    .arg("COUNT")
                    .arg(1000)
                    .query_async(&mut inner.connection())
                    .await
                    .map_err(backend_error)?;
                extras.extend(found);
                if next == 0 {
                    break;
                }
                cursor = next;
            }
        }
        for chunk in extras.chunks(500) {
            let _: i64 = redis::cmd("DEL")
                .arg(chunk)
                .query_async(&mut inner.connection())
                .await
                .map_err(backend_error)?;
        }
        inner.schedule.forget(topic);
        inner
            .cursors()
            .retain(|(cursor_topic, _), _| cursor_topic != topic);
        Ok(deleted > 0 || unregistered > 0)
    }

    async fn list_topics(&self) -> Result<Vec<String>, BackendError> {
        let mut topics: Vec<String> = redis::cmd("SMEMBERS")
            .arg(self.inner.keys.registry())
            .query_async(&mut self.inner.connection())
            .await
            .map_err(backend_error)?;
        topics.sort_unstable();
        Ok(topics)
    }

    async fn ensure_group(
        &self,
        topic: &str,
        group: &str,
        start: StartFrom,
    ) -> Result<(), BackendError> {
        messaging_model::validate_topic(topic)?;
        self.inner.register(topic).await?;
        self.inner.create_group(topic, group, start).await
    }

    async fn delete_group(&self, topic: &str, group: &str) -> Result<bool, BackendError> {
        messaging_model::validate_topic(topic)?;
        let inner = &self.inner;
        let keys = inner.keys.topic(topic);
        let destroyed: Result<i64, RedisError> = redis::cmd("XGROUP")
            .arg("DESTROY")
            .arg(&keys.stream)
            .arg(group)
            .query_async(&mut inner.connection())
            .await;
        inner
            .cursors()
            .remove(&(topic.to_owned(), group.to_owned()));
        match destroyed {
            Ok(destroyed) => {
                if destroyed > 0 {
                    // What only that group held back may be trimmable now.
                    inner.touched(topic);
                }
                Ok(destroyed > 0)
            }
            // "requires the key to exist": no stream, so no group either.
            Err(error) if error.code() == Some("ERR") && !error.is_io_error() => {
                let exists: i64 = redis::cmd("EXISTS")
                    .arg(&keys.stream)
                    .query_async(&mut inner.connection())
                    .await
                    .map_err(backend_error)?;
                if exists == 0 {
                    Ok(false)
                } else {
                    Err(backend_error(error))
                }
            }
            Err(error) => Err(backend_error(error)),
        }
    }

    async fn read(
        &self,
        topic: &str,
        group: &str,
        consumer: &str,
        from: ReadFrom,
        count: usize,
        block: Duration,
    ) -> Result<Vec<Delivery>, BackendError> {
        messaging_model::validate_topic(topic)?;
        if count == 0 {
            return Ok(Vec::new());
        }
        match from {
            ReadFrom::New => {
                self.inner
                    .read_new(topic, group, consumer, count, block)
                    .await
            }
            ReadFrom::OwnPending { after } => {
                self.inner
                    .read_own_pending(topic, group, consumer, after.as_deref(), count)
                    .await
            }
        }
    }

    async fn reclaim_idle(
        &self,
        topic: &str,
        group: &str,
        consumer: &str,
        min_idle: Duration,
        count: usize,
    ) -> Result<Vec<Delivery>, BackendError> {
        messaging_model::validate_topic(topic)?;
        self.inner
            .reclaim_idle(topic, group, consumer, min_idle, count)
            .await
    }

    async fn extend_lease(&self, receipt: &Receipt) -> Result<Settlement, BackendError> {
        messaging_model::validate_topic(&receipt.topic)?;
        let keys = self.inner.keys.topic(&receipt.topic);
        let done: i64 = SCRIPTS
            .extend_lease
            .key(&keys.stream)
            .arg(&receipt.group)
            .arg(&receipt.consumer)
            .arg(&receipt.entry_id)
            .arg(receipt.delivery_count)
            .invoke_async(&mut self.inner.connection())
            .await
            .map_err(backend_error)?;
        Ok(settlement(receipt, "extend lease", done == 1))
    }

    async fn ack(&self, receipt: &Receipt) -> Result<Settlement, BackendError> {
        messaging_model::validate_topic(&receipt.topic)?;
        let (done, settled) = tokio::sync::oneshot::channel();
        let request = AckRequest {
            receipt: receipt.clone(),
            done,
        };
        let settled = match self.inner.acks.send(request) {
            Ok(()) => settled.await.unwrap_or_else(|_| {
                Err(BackendError::unavailable(std::io::Error::other(
                    "the acknowledgement task stopped",
                )))
            })?,
            // Only while the backend is being dropped.
            Err(_) => {
                let settled = self
                    .inner
                    .ack_many(&[receipt])
                    .await
                    .map_err(backend_error)?;
                settled.first().copied().unwrap_or(false)
            }
        };
        Ok(settlement(receipt, "ack", settled))
    }

    async fn retry_at(
        &self,
        receipt: &Receipt,
        message: &Message,
        deliver_at: DateTime<Utc>,
    ) -> Result<Settlement, BackendError> {
        messaging_model::validate_topic(&receipt.topic)?;
        message.validate()?;
        let inner = &self.inner;
        let keys = inner.keys.topic(&receipt.topic);
        let score = due_score(deliver_at);
        let done: i64 = SCRIPTS
            .retry
            .key(&keys.stream)
            .key(&keys.delayed)
            .arg(&receipt.group)
            .arg(&receipt.consumer)
            .arg(&receipt.entry_id)
            .arg(receipt.delivery_count)
            .arg(score)
            .arg(delayed_member(message)?)
            .invoke_async(&mut inner.connection())
            .await
            .map_err(backend_error)?;
        if done == 1 {
            inner.indexed(&receipt.topic, score).await;
            inner.schedule.due_at(&receipt.topic, deliver_at);
            inner.touched(&receipt.topic);
        }
        Ok(settlement(receipt, "retry", done == 1))
    }

    async fn dead_letter(
        &self,
        receipt: &Receipt,
        message: &Message,
        error: &str,
    ) -> Result<Settlement, BackendError> {
        messaging_model::validate_topic(&receipt.topic)?;
        let mut message = message.clone();
        message.status = MessageStatus::Failed;
        let attempts = message.retry.saturating_add(1);
        self.inner
            .dead_letter_as(receipt, &message, error, attempts)
            .await
    }

    async fn dead_letters(
        &self,
        topic: &str,
        limit: usize,
    ) -> Result<Vec<DeadLetter>, BackendError> {
        messaging_model::validate_topic(topic)?;
        // Pages on past entries that are no dead letter (written by something
        // else): 600 of them first once hid every real one, and
        // `replay_all_dead_letters` replayed none.
        let mut found = Vec::new();
        let mut skipped: Vec<UndecodableDeadLetter> = Vec::new();
        let mut after: Option<String> = None;
        while found.len() < limit {
            let want = limit - found.len();
            // Read what is still wanted, more when junk showed up.
            let count = want.max(skipped.len().min(MAX_DEAD_LETTER_PAGE));
            let page = self
                .inner
                .dead_letter_page(topic, after.as_deref(), count)
                .await?;
            found.extend(page.dead_letters.into_iter().take(want));
            if skipped.len() < MAX_DEAD_LETTER_PAGE {
                skipped.extend(page.undecodable);
            } else {
                skipped.truncate(MAX_DEAD_LETTER_PAGE);
            }
            match page.next {
                Some(next) => after = Some(next),
                None => break,
            }
        }
        if let Some(first) = skipped.first() {
            warn!(
                %topic,
                skipped = skipped.len(),
                first = %first.id,
                reason = %first.reason,
                "the dead-letter stream holds entries that are no dead letter; listed past them (see RedisBackend::dead_letter_page)"
            );
        }
        Ok(found)
    }

    async fn replay_dead_letter(&self, topic: &str, id: &str) -> Result<bool, BackendError> {
        messaging_model::validate_topic(topic)?;
        if !codec::is_stream_id(id) {
            return Ok(false);
        }
        let inner = &self.inner;
        let keys = inner.keys.topic(topic);
        let reply: Value = redis::cmd("XRANGE")
            .arg(&keys.dead)
            .arg(id)
            .arg(id)
            .query_async(&mut inner.connection())
            .await
            .map_err(backend_error)?;
        let Some((id, fields)) = codec::entries(reply).into_iter().next() else {
            return Ok(false);
        };
        let dead =
            codec::decode_dead_letter(&id, &fields).map_err(|reason| BackendError::Corrupt {
                topic: topic.to_owned(),
                entry_id: id.clone(),
                reason,
            })?;
        let json = codec::encode(&dead.replay_message())?;
        let replayed: i64 = SCRIPTS
            .replay
            .key(&keys.dead)
            .key(&keys.stream)
            .arg(&id)
            .arg(json)
            .invoke_async(&mut inner.connection())
            .await
            .map_err(backend_error)?;
        if replayed == 1 {
            inner.touched(topic);
        }
        Ok(replayed == 1)
    }

    async fn purge_dead_letters(&self, topic: &str) -> Result<u64, BackendError> {
        messaging_model::validate_topic(topic)?;
        let keys = self.inner.keys.topic(topic);
        let purged: u64 = SCRIPTS
            .purge
            .key(&keys.dead)
            .invoke_async(&mut self.inner.connection())
            .await
            .map_err(backend_error)?;
        Ok(purged)
    }

    async fn stats(&self, topic: &str) -> Result<TopicStats, BackendError> {
        messaging_model::validate_topic(topic)?;
        let inner = &self.inner;
        inner.promote(topic).await?;
        let keys = inner.keys.topic(topic);
        let reply: Value = SCRIPTS
            .stats
            .key(&keys.stream)
            .key(&keys.delayed)
            .key(&keys.dead)
            .invoke_async(&mut inner.connection())
            .await
            .map_err(backend_error)?;
        let items = codec::items(reply);
        let count = |index: usize| {
            items
                .get(index)
                .and_then(codec::int)
                .and_then(|n| u64::try_from(n).ok())
                .unwrap_or(0)
        };
        let groups = items
            .get(3..)
            .unwrap_or_default()
            .chunks_exact(4)
            .map(|group| {
                let number = |value: &Value| {
                    codec::int(value)
                        .and_then(|n| u64::try_from(n).ok())
                        .unwrap_or(0)
                };
                GroupStats {
                    name: codec::string(&group[0]).unwrap_or_default(),
                    pending: number(&group[1]),
                    lag: number(&group[2]),
                    consumers: number(&group[3]),
                }
            })
            .collect();
        Ok(TopicStats {
            topic: topic.to_owned(),
            length: count(0),
            scheduled: count(1),
            dead_lettered: count(2),
            groups,
        })
    }

    async fn health(&self) -> Result<BackendHealth, BackendError> {
        let mut connection = self.inner.connection();
        let _: String = redis::cmd("PING")
            .query_async(&mut connection)
            .await
            .map_err(backend_error)?;
        let settings: Result<(Value, Value, Value), RedisError> = redis::pipe()
            .cmd("CONFIG")
            .arg("GET")
            .arg("maxmemory-policy")
            .cmd("CONFIG")
            .arg("GET")
            .arg("appendonly")
            .cmd("CONFIG")
            .arg("GET")
            .arg("save")
            .query_async(&mut connection)
            .await;
        let mut warnings = Vec::new();
        match settings {
            Ok((policy, appendonly, save)) => {
                let value = |reply: &Value| {
                    codec::fields(reply.clone())
                        .and_then(|pairs| pairs.into_iter().next())
                        .map(|(_, value)| String::from_utf8_lossy(&value).into_owned())
                };
                match value(&policy).as_deref() {
                    Some("noeviction") => {}
                    Some(policy) => warnings.push(format!(
                        "maxmemory-policy is {policy}: Redis may evict message keys under memory pressure and lose messages silently; set it to noeviction"
                    )),
                    None => warnings.push("could not read maxmemory-policy; make sure it is noeviction".to_owned()),
                }
                let aof = value(&appendonly).as_deref() == Some("yes");
                let snapshots = value(&save).is_some_and(|save| !save.trim().is_empty());
                if !aof && !snapshots {
                    warnings.push(
                        "persistence is off (appendonly no, no save points): a Redis restart loses every message; enable appendonly".to_owned(),
                    );
                }
            }
            Err(error) => warnings.push(format!(
                "could not read the server's settings ({error}); make sure maxmemory-policy is noeviction and appendonly is on"
            )),
        }
        Ok(BackendHealth { warnings })
    }

    fn cancel_backend(&self) -> Option<&dyn messaging_core::CancelBackend> {
        Some(self)
    }

    fn unique_backend(&self) -> Option<&dyn messaging_core::unique::UniqueBackend> {
        Some(self)
    }
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
        fn assert_object_safe(_: Option<Arc<dyn MessageBackend>>) {}
        assert_object_safe(None::<Arc<RedisBackend>>.map(|b| b as Arc<dyn MessageBackend>));
    }
}
