//! Partitioned topics: one topic spread over several streams of any backend.
//!
//! [`Partitioned`] wraps a backend and makes a topic created with N partitions
//! (`create_partitioned_topic("orders", 6)`) live in N topics of that backend,
//! `orders#0` … `orders#5`. On Redis each partition is a stream with its own
//! hash tag, so on a Redis Cluster one busy topic spreads over the masters.
//!
//! - **Publish** routes a message by its
//!   [`partition_key`](messaging_model::Message::partition_key): one key, one
//!   partition, the order of publishing kept. Messages without a key spread
//!   round-robin; a batch without keys goes to one partition, so its order holds.
//!   A unique message goes to the partition of its unique key (one lock per key).
//! - **Consume**: a consumer of the topic reads every partition, in turn, so a
//!   busy partition cannot starve the others; the consumers of a group share
//!   every partition's messages as they share a plain topic's.
//! - **Per partition**, untouched: delays, retries (a retry stays in its
//!   partition), dead letters, leases, fencing and reclaim are the wrapped
//!   backend's own. Receipts and dead-letter ids name their partition
//!   (`3:1700000000000-0`); handlers see the topic's own name.
//! - **Admin** answers for the whole topic: stats summed over the partitions,
//!   dead letters of every partition (oldest first), `list_topics` names the
//!   topic once, `delete_topic` deletes every partition.
//!
//! Topics without a partition count recorded are plain and pass through
//! unchanged. The count is recorded in the backend ([`PartitionRegistry`]), so
//! every process agrees on it; it cannot change once recorded.
//!
//! ```
//! use std::sync::Arc;
//! use messaging_core::{InMemoryBackend, MessagingService, Partitioned};
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let backend = Arc::new(Partitioned::new(InMemoryBackend::new()));
//! backend.create_partitioned_topic(&"orders.placed".parse()?, 4).await?;
//! let service = MessagingService::new(backend.clone());
//! let message = service
//!     .message("orders.placed", serde_json::json!({"order": 7}))?
//!     .with_partition_key("customer-42")?;
//! service.publish_message(&message).await?;
//! assert_eq!(service.stats("orders.placed").await?.length, 1);
//! assert_eq!(service.list_topics().await?, vec!["orders.placed".parse::<messaging_model::Topic>()?]);
//! # Ok(()) }
//! ```

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use messaging_model::{MAX_PARTITIONS, Message, Topic};
use tokio::time::Instant;
use uuid::Uuid;

use crate::BackendError;
use crate::backend::{
    Backend, BackendAdmin, BackendHealth, CancelBackend, ConsumerId, DeadLetter, Delivery,
    GroupStats, MessageBackend, ReadFrom, ReadOptions, Receipt, Settlement, StartFrom, TopicStats,
};
use crate::schedule::{Schedule, ScheduleBackend, ScheduleState};
use crate::unique::UniqueBackend;

/// Where a backend records how many partitions a topic has.
///
/// A record is written once and never changes (until the topic is deleted), so
/// every process routing to the topic agrees on its partitions.
#[async_trait]
pub trait PartitionRegistry: Send + Sync + 'static {
    /// The partition count recorded for `topic`; `None` for a plain topic.
    async fn recorded_partitions(&self, topic: &Topic) -> Result<Option<u16>, BackendError>;

    /// Records `count` partitions for `topic` unless a count is recorded
    /// already; answers the count recorded (this one or the earlier one). The
    /// number may also be a priority topic's record: a registry stores and
    /// answers it as it is ([`is_valid_record`] says what is valid).
    async fn record_partitions(&self, topic: &Topic, count: u16) -> Result<u16, BackendError>;

    /// Removes the record of `topic` (when the topic is deleted).
    async fn forget_partitions(&self, topic: &Topic) -> Result<(), BackendError>;
}

/// How long a process trusts that a topic without a record is plain before
/// asking the backend again (a topic another process made partitioned later is
/// routed to its partitions after at most this).
const PLAIN_RECHECK: Duration = Duration::from_secs(5);

/// How long a process trusts a recorded count before asking again (a topic
/// deleted and created again elsewhere is routed by its new record after at
/// most this).
const PARTITIONED_RECHECK: Duration = Duration::from_secs(30);

/// A backend whose topics may be partitioned; see the [module](self) docs.
pub struct Partitioned<B> {
    inner: Arc<B>,
    /// Partitions recorded for a topic used without a record (`None`: such a
    /// topic stays plain).
    new_topics: Option<u16>,
    /// Known counts, each trusted until its instant.
    counts: Mutex<HashMap<Topic, (u16, Instant)>>,
    /// The next partition of a message without a key.
    spread: AtomicUsize,
    /// Each consumer's reads still running on its partitions.
    readers: Mutex<HashMap<ConsumerId, Arc<tokio::sync::Mutex<Reader>>>>,
    /// Where each consumer's next sweep starts (kept apart from `readers`,
    /// which forgets idle consumers; cleared past [`MAX_SWEEP_CURSORS`]).
    sweeps: Mutex<HashMap<ConsumerId, usize>>,
}

/// Consumers whose sweep position is remembered; past it all restart at 0.
const MAX_SWEEP_CURSORS: usize = 4096;

/// The bit a priority topic's record carries beside its lane count (see
/// [`crate::priority`]): the registry keeps one number per topic.
const PRIORITY_FLAG: u16 = 0x8000;

/// The record of a priority topic.
const PRIORITY_RECORD: u16 = PRIORITY_FLAG | crate::priority::LANES;

/// Whether `record` is what a [`PartitionRegistry`] may hold: a partition
/// count of 1 to 1023, or the record of a priority topic. A backend's registry
/// treats anything else read back as corrupt.
///
/// ```
/// use messaging_core::partition::is_valid_record;
/// assert!(is_valid_record(6));
/// assert!(!is_valid_record(0) && !is_valid_record(5000));
/// ```
pub fn is_valid_record(record: u16) -> bool {
    record == PRIORITY_RECORD || (1..MAX_PARTITIONS).contains(&record)
}

/// A record's partition count and whether it is a priority topic.
fn layout(record: u16) -> (u16, bool) {
    (record & !PRIORITY_FLAG, record & PRIORITY_FLAG != 0)
}

/// What a record makes a topic, for errors.
fn describe(record: u16) -> String {
    match layout(record) {
        (_, true) => "a priority topic (high, normal, low)".to_owned(),
        (1, false) => "a plain topic".to_owned(),
        (count, false) => format!("a topic of {count} partitions"),
    }
}

impl<B> std::fmt::Debug for Partitioned<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Partitioned")
            .field("new_topics", &self.new_topics)
            .finish_non_exhaustive()
    }
}

/// One consumer's state across calls to `read`: blocking reads still running
/// on some partitions, and deliveries they returned beyond what was asked.
struct Reader {
    /// Partitions with a blocking read running, and its task (ended when the
    /// consumer stops).
    running: BTreeMap<u16, tokio::task::JoinHandle<()>>,
    /// Where running reads send what they return.
    finished_tx: tokio::sync::mpsc::UnboundedSender<Finished>,
    finished: tokio::sync::mpsc::UnboundedReceiver<Finished>,
    carried: VecDeque<Delivery>,
}

/// What a blocking read of one partition returned.
type Finished = (u16, Result<Vec<Delivery>, BackendError>);

impl Default for Reader {
    fn default() -> Self {
        let (finished_tx, finished) = tokio::sync::mpsc::unbounded_channel();
        Self {
            running: BTreeMap::new(),
            finished_tx,
            finished,
            carried: VecDeque::new(),
        }
    }
}

impl<B: Backend + PartitionRegistry> Partitioned<B> {
    /// Wraps `backend`; topics stay plain unless created partitioned.
    pub fn new(backend: B) -> Self {
        Self::from_arc(Arc::new(backend))
    }

    /// [`new`](Self::new) for a backend already shared.
    pub fn from_arc(backend: Arc<B>) -> Self {
        Self {
            inner: backend,
            new_topics: None,
            counts: Mutex::default(),
            spread: AtomicUsize::new(0),
            readers: Mutex::default(),
            sweeps: Mutex::default(),
        }
    }

    /// Every topic used without a record (published to, read, created) is
    /// recorded with `count` partitions at its first use. For a deployment where
    /// every topic is partitioned (and for the conformance suite); a plain topic
    /// already holding messages would be left behind, so use it on new topics.
    pub fn partitioning_new_topics(mut self, count: u16) -> Result<Self, BackendError> {
        check_count(count)?;
        self.new_topics = Some(count);
        Ok(self)
    }

    /// Every topic used without a record is recorded as a priority topic at
    /// its first use ([`crate::priority`]); as
    /// [`partitioning_new_topics`](Self::partitioning_new_topics), for new
    /// topics (and the conformance suite).
    pub fn prioritizing_new_topics(mut self) -> Self {
        self.new_topics = Some(PRIORITY_RECORD);
        self
    }

    /// The wrapped backend.
    pub fn inner(&self) -> &Arc<B> {
        &self.inner
    }

    /// Creates `topic` with `count` partitions (1 to 1023) and creates each
    /// partition in the backend. Creating it again with the same count is fine;
    /// a topic recorded with another count, or a plain topic that exists already,
    /// is [`BackendError::PartitionsConflict`].
    pub async fn create_partitioned_topic(
        &self,
        topic: &Topic,
        count: u16,
    ) -> Result<(), BackendError> {
        check_count(count)?;
        if topic.partition_of().is_some() {
            return Err(BackendError::InvalidPartitions {
                requested: count,
                reason: format!("{topic} is a partition already"),
            });
        }
        if self.inner.recorded_partitions(topic).await?.is_none()
            && self.inner.list_topics().await?.contains(topic)
        {
            return Err(BackendError::PartitionsConflict {
                topic: topic.to_string(),
                recorded: 1,
                requested: count,
            });
        }
        self.create_with_record(topic, count).await
    }

    /// Records `record` for `topic` (or finds it recorded) and creates its
    /// partitions.
    async fn create_with_record(&self, topic: &Topic, record: u16) -> Result<(), BackendError> {
        let recorded = self.inner.record_partitions(topic, record).await?;
        if recorded != record {
            return Err(match (layout(recorded), layout(record)) {
                ((recorded, false), (requested, false)) => BackendError::PartitionsConflict {
                    topic: topic.to_string(),
                    recorded,
                    requested,
                },
                _ => BackendError::LayoutConflict {
                    topic: topic.to_string(),
                    recorded: describe(recorded),
                    requested: describe(record),
                },
            });
        }
        self.remember(topic, record);
        for partition in partitions(topic, layout(record).0) {
            self.inner.create_topic(&partition).await?;
        }
        Ok(())
    }

    /// Creates `topic` as a priority topic ([`crate::priority`]): three
    /// partitions, high, normal and low, recorded with the priority layout.
    /// Creating it again is fine; a topic recorded otherwise, or a plain topic
    /// that exists already, is [`BackendError::LayoutConflict`].
    pub async fn create_priority_topic(&self, topic: &Topic) -> Result<(), BackendError> {
        if topic.partition_of().is_some() {
            return Err(BackendError::InvalidPartitions {
                requested: crate::priority::LANES,
                reason: format!("{topic} is a partition already"),
            });
        }
        if self.inner.recorded_partitions(topic).await?.is_none()
            && self.inner.list_topics().await?.contains(topic)
        {
            return Err(BackendError::LayoutConflict {
                topic: topic.to_string(),
                recorded: describe(1),
                requested: describe(PRIORITY_RECORD),
            });
        }
        self.create_with_record(topic, PRIORITY_RECORD).await
    }

    /// Whether `topic` is a priority topic.
    pub async fn is_priority_topic(&self, topic: &Topic) -> Result<bool, BackendError> {
        Ok(layout(self.record_of(topic, false).await?).1)
    }

    /// How many partitions `topic` has (1 for a plain topic or a partition).
    pub async fn partition_count(&self, topic: &Topic) -> Result<u16, BackendError> {
        self.count_of(topic, true).await
    }

    /// [`partition_count`](Self::partition_count) for what only reads or
    /// removes: a topic without a record is not recorded (with
    /// [`partitioning_new_topics`](Self::partitioning_new_topics) it answers the
    /// count it would get, whose partitions hold nothing yet).
    async fn existing_partition_count(&self, topic: &Topic) -> Result<u16, BackendError> {
        self.count_of(topic, false).await
    }

    /// The count of `topic` (see [`record_of`](Self::record_of)).
    async fn count_of(&self, topic: &Topic, record: bool) -> Result<u16, BackendError> {
        Ok(layout(self.record_of(topic, record).await?).0)
    }

    /// The record of `topic`: cached, else recorded; a topic without a record
    /// gets `new_topics` recorded when `record` says so.
    async fn record_of(&self, topic: &Topic, record: bool) -> Result<u16, BackendError> {
        if topic.partition_of().is_some() {
            return Ok(1);
        }
        if let Some(count) = self.cached(topic) {
            return Ok(count);
        }
        let count = match (
            self.inner.recorded_partitions(topic).await?,
            self.new_topics,
        ) {
            (Some(count), _) => count,
            (None, Some(count)) if record => self.inner.record_partitions(topic, count).await?,
            (None, None) if record => 1,
            (None, new_topics) => return Ok(new_topics.unwrap_or(1)),
        };
        self.remember(topic, count);
        Ok(count)
    }

    fn cached(&self, topic: &Topic) -> Option<u16> {
        let counts = self.counts.lock().expect("partition counts lock");
        match counts.get(topic) {
            Some((count, until)) if Instant::now() < *until => Some(*count),
            _ => None,
        }
    }

    fn remember(&self, topic: &Topic, count: u16) {
        let trusted = if count == 1 {
            PLAIN_RECHECK
        } else {
            PARTITIONED_RECHECK
        };
        let until = Instant::now() + trusted;
        self.counts
            .lock()
            .expect("partition counts lock")
            .insert(topic.clone(), (count, until));
    }

    fn forget(&self, topic: &Topic) {
        self.counts
            .lock()
            .expect("partition counts lock")
            .remove(topic);
    }

    /// The partition a message without a unique key goes to: its priority's
    /// lane in a priority topic, else by its key or round-robin.
    fn route(&self, message: &Message, record: u16) -> u16 {
        match (layout(record), &message.partition_key) {
            ((_, true), _) => crate::priority::Priority::of(message).lane(),
            ((count, false), Some(key)) => index_of(key, count),
            ((count, false), None) => self.next_spread(count),
        }
    }

    fn next_spread(&self, count: u16) -> u16 {
        (self.spread.fetch_add(1, Ordering::Relaxed) % usize::from(count)) as u16
    }

    /// The start of `consumer`'s next sweep: each call one partition further.
    fn next_sweep(&self, consumer: &ConsumerId) -> usize {
        let mut sweeps = self.sweeps.lock().expect("sweeps lock");
        if sweeps.len() >= MAX_SWEEP_CURSORS && !sweeps.contains_key(consumer) {
            sweeps.clear();
        }
        let next = sweeps.entry(consumer.clone()).or_insert(0);
        let start = *next;
        *next = next.wrapping_add(1);
        start
    }

    fn reader(&self, consumer: &ConsumerId) -> Arc<tokio::sync::Mutex<Reader>> {
        self.readers
            .lock()
            .expect("readers lock")
            .entry(consumer.clone())
            .or_default()
            .clone()
    }

    /// Drops a consumer's state once nothing runs or waits in it.
    fn release_reader(&self, consumer: &ConsumerId, reader: &Reader) {
        if reader.running.is_empty() && reader.carried.is_empty() {
            self.readers.lock().expect("readers lock").remove(consumer);
        }
    }

    async fn read_new(
        &self,
        consumer: &ConsumerId,
        options: &ReadOptions,
        count: u16,
        prioritized: bool,
    ) -> Result<Vec<Delivery>, BackendError> {
        let shared = self.reader(consumer);
        let mut reader = shared.lock().await;
        let result = self
            .read_new_locked(consumer, options, count, prioritized, &mut reader)
            .await;
        self.release_reader(consumer, &reader);
        result
    }

    async fn read_new_locked(
        &self,
        consumer: &ConsumerId,
        options: &ReadOptions,
        count: u16,
        prioritized: bool,
        reader: &mut Reader,
    ) -> Result<Vec<Delivery>, BackendError> {
        let wanted = options.count.max(1);
        harvest(reader, consumer)?;
        if !reader.carried.is_empty() {
            return Ok(take(reader, wanted));
        }
        // A sweep without blocking over the partitions not being read: from a
        // rotating start, so every partition is served in turn; in a priority
        // topic, in the lane order of this read (high first, see
        // `crate::priority`).
        let sweep = self.next_sweep(consumer);
        let start = sweep % usize::from(count);
        let lanes = crate::priority::lane_order(sweep);
        let mut taken = Vec::new();
        for step in 0..count {
            let index = if prioritized {
                lanes[usize::from(step) % lanes.len()]
            } else {
                ((start + usize::from(step)) % usize::from(count)) as u16
            };
            if reader.running.contains_key(&index) || taken.len() >= wanted {
                continue;
            }
            let part = partition_consumer(consumer, index);
            let read = ReadOptions::new_entries(wanted - taken.len(), Duration::ZERO);
            let deliveries = self.inner.read(&part, &read).await?;
            taken.extend(deliveries.into_iter().map(|d| outward(d, consumer, index)));
        }
        if !taken.is_empty() || options.block.is_zero() {
            return Ok(taken);
        }
        // Nothing waiting: block on every partition at once and answer with the
        // first to return. Reads still blocking keep running; what they return
        // is answered by the next call (never dropped: a dropped read could
        // leave entries delivered to nobody until their lease ran out).
        for index in 0..count {
            if reader.running.contains_key(&index) {
                continue;
            }
            let inner = self.inner.clone();
            let part = partition_consumer(consumer, index);
            let read = ReadOptions::new_entries(wanted, options.block);
            let finished = reader.finished_tx.clone();
            let task = tokio::spawn(async move {
                let _ = finished.send((index, inner.read(&part, &read).await));
            });
            reader.running.insert(index, task);
        }
        if let Ok(Some(first)) = tokio::time::timeout(options.block, reader.finished.recv()).await {
            settle_read(reader, consumer, first)?;
        }
        harvest(reader, consumer)?;
        Ok(take(reader, wanted))
    }

    async fn read_own_pending(
        &self,
        consumer: &ConsumerId,
        after: Option<&str>,
        options: &ReadOptions,
        count: u16,
    ) -> Result<Vec<Delivery>, BackendError> {
        // Partition by partition in index order; `after` names where the last
        // page ended.
        let (first, mut cursor) = match after {
            Some(id) => {
                let (index, inner_id) = split_id(id, &consumer.topic)?;
                (index, Some(inner_id.to_owned()))
            }
            None => (0, None),
        };
        let mut taken = Vec::new();
        for index in first..count {
            let wanted = options.count.max(1) - taken.len();
            if wanted == 0 {
                break;
            }
            let part = partition_consumer(consumer, index);
            let read = ReadOptions::own_pending(cursor.take(), wanted);
            let deliveries = self.inner.read(&part, &read).await?;
            taken.extend(deliveries.into_iter().map(|d| outward(d, consumer, index)));
        }
        Ok(taken)
    }

    /// The receipt the backend gave for a receipt of a partition (its id names
    /// the partition, `3:1700000000000-0`); `None` for a plain topic's receipt.
    fn inward(receipt: &Receipt) -> Result<Option<Receipt>, BackendError> {
        if receipt.topic().partition_of().is_some() || !receipt.entry_id.contains(':') {
            return Ok(None);
        }
        let (index, inner_id) = split_id(&receipt.entry_id, receipt.topic())?;
        if receipt.topic().partition(index).is_none() {
            return Err(corrupt_id(receipt.topic(), &receipt.entry_id));
        }
        Ok(Some(Receipt {
            consumer: partition_consumer(&receipt.consumer, index),
            entry_id: inner_id.to_owned(),
            delivery_count: receipt.delivery_count,
        }))
    }

    /// Publishes one run of a batch (one stream), appending its ids; a refusal
    /// counts what the batch wrote before it.
    async fn publish_run(
        &self,
        run: &[Message],
        index: Option<u16>,
        ids: &mut Vec<String>,
    ) -> Result<(), BackendError> {
        let Some(first) = run.first() else {
            return Ok(());
        };
        match self.inner.publish_batch(run).await {
            Ok(run_ids) => {
                ids.extend(run_ids.into_iter().map(|id| match index {
                    Some(index) => join_id(index, &id),
                    None => id,
                }));
                Ok(())
            }
            Err(BackendError::QueueFull { cap, written, .. }) => Err(BackendError::QueueFull {
                topic: first.topic.base().to_string(),
                cap,
                written: ids.len() + written,
            }),
            Err(error) => Err(error),
        }
    }
}

fn check_count(count: u16) -> Result<(), BackendError> {
    if count == 0 || count >= MAX_PARTITIONS {
        return Err(BackendError::InvalidPartitions {
            requested: count,
            reason: format!("a topic has 1 to {} partitions", MAX_PARTITIONS - 1),
        });
    }
    Ok(())
}

fn partitions(topic: &Topic, count: u16) -> impl Iterator<Item = Topic> + '_ {
    (0..count).filter_map(move |index| topic.partition(index))
}

fn partition_topic(topic: &Topic, index: u16) -> Topic {
    topic
        .partition(index)
        .expect("a base topic and an index below its count")
}

fn partition_consumer(consumer: &ConsumerId, index: u16) -> ConsumerId {
    ConsumerId::new(
        partition_topic(&consumer.topic, index),
        consumer.group.clone(),
        consumer.consumer.clone(),
    )
}

fn with_topic(message: &Message, topic: Topic) -> Message {
    let mut message = message.clone();
    message.topic = topic;
    message
}

/// A delivery of partition `index` as the consumer of the whole topic sees it.
fn outward(mut delivery: Delivery, consumer: &ConsumerId, index: u16) -> Delivery {
    delivery.message.topic = consumer.topic.clone();
    delivery.receipt = Receipt {
        consumer: consumer.clone(),
        entry_id: join_id(index, &delivery.receipt.entry_id),
        delivery_count: delivery.receipt.delivery_count,
    };
    delivery
}

/// A partition's refusal, named after its topic (the cap holds per partition).
fn named_after(error: BackendError, topic: &Topic) -> BackendError {
    match error {
        BackendError::QueueFull { cap, written, .. } => BackendError::QueueFull {
            topic: topic.to_string(),
            cap,
            written,
        },
        error => error,
    }
}

fn join_id(index: u16, inner: &str) -> String {
    format!("{index}:{inner}")
}

fn split_id<'a>(id: &'a str, topic: &Topic) -> Result<(u16, &'a str), BackendError> {
    id.split_once(':')
        .and_then(|(index, inner)| Some((index.parse().ok()?, inner)))
        .ok_or_else(|| corrupt_id(topic, id))
}

fn corrupt_id(topic: &Topic, id: &str) -> BackendError {
    BackendError::Corrupt {
        topic: topic.to_string(),
        entry_id: id.to_owned(),
        reason: "not the id of a partition's entry (PARTITION:ID)".to_owned(),
    }
}

/// Moves what finished reads returned into the carried deliveries.
fn harvest(reader: &mut Reader, consumer: &ConsumerId) -> Result<(), BackendError> {
    let mut failure = None;
    while let Ok(finished) = reader.finished.try_recv() {
        if let Err(error) = settle_read(reader, consumer, finished) {
            failure = Some(error);
        }
    }
    match failure {
        Some(error) if reader.carried.is_empty() => Err(error),
        _ => Ok(()),
    }
}

/// Takes in what one partition's blocking read returned.
fn settle_read(
    reader: &mut Reader,
    consumer: &ConsumerId,
    (index, result): Finished,
) -> Result<(), BackendError> {
    reader.running.remove(&index);
    let deliveries = result?;
    reader
        .carried
        .extend(deliveries.into_iter().map(|d| outward(d, consumer, index)));
    Ok(())
}

fn take(reader: &mut Reader, wanted: usize) -> Vec<Delivery> {
    let n = wanted.min(reader.carried.len());
    reader.carried.drain(..n).collect()
}

/// The partition of `key` among `count`: FNV-1a, stable across processes and
/// releases (changing it would move keys between partitions).
pub fn index_of(key: &str, count: u16) -> u16 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in key.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    (hash % u64::from(count.max(1))) as u16
}

#[async_trait]
impl<B: Backend + PartitionRegistry> MessageBackend for Partitioned<B> {
    fn name(&self) -> &'static str {
        self.inner.name()
    }

    /// Ends the blocking reads still running for `consumer` (and waits for
    /// their tasks), and forgets its sweep position.
    async fn consumer_stopped(&self, consumer: &ConsumerId) {
        let reader = self.readers.lock().expect("readers lock").remove(consumer);
        if let Some(reader) = reader {
            let mut reader = reader.lock().await;
            for task in std::mem::take(&mut reader.running).into_values() {
                task.abort();
                let _ = task.await;
            }
        }
        self.sweeps.lock().expect("sweeps lock").remove(consumer);
        self.inner.consumer_stopped(consumer).await;
    }

    async fn publish(&self, message: &Message) -> Result<String, BackendError> {
        let record = self.record_of(&message.topic, true).await?;
        if record == 1 {
            return self.inner.publish(message).await;
        }
        let index = self.route(message, record);
        let id = self
            .inner
            .publish(&with_topic(message, partition_topic(&message.topic, index)))
            .await
            .map_err(|error| named_after(error, &message.topic))?;
        Ok(join_id(index, &id))
    }

    async fn publish_batch(&self, messages: &[Message]) -> Result<Vec<String>, BackendError> {
        // A batch may name several topics. Plain ones pass through untouched;
        // otherwise each message is routed, and the runs of consecutive messages
        // bound for one stream are published in order, so the first `written` of
        // a refused batch are exactly what was written.
        let mut records: Vec<(Topic, u16)> = Vec::new();
        for message in messages {
            if !records.iter().any(|(topic, _)| *topic == message.topic) {
                let record = self.record_of(&message.topic, true).await?;
                records.push((message.topic.clone(), record));
            }
        }
        if records.iter().all(|(_, record)| *record == 1) {
            return self.inner.publish_batch(messages).await;
        }
        let record_of = |topic: &Topic| {
            records
                .iter()
                .find(|(known, _)| known == topic)
                .map_or(1, |(_, record)| *record)
        };
        // Keyless messages of a topic all go to one partition: the batch's order holds.
        let mut sticky: Vec<(Topic, u16)> = Vec::new();
        let mut ids = Vec::with_capacity(messages.len());
        let mut run: Vec<Message> = Vec::new();
        let mut run_index: Option<u16> = None;
        for message in messages {
            let record = record_of(&message.topic);
            let (count, prioritized) = layout(record);
            let (index, routed) = if record == 1 {
                (None, message.clone())
            } else {
                let index = match &message.partition_key {
                    _ if prioritized => crate::priority::Priority::of(message).lane(),
                    Some(key) => index_of(key, count),
                    None => match sticky.iter().find(|(topic, _)| *topic == message.topic) {
                        Some((_, index)) => *index,
                        None => {
                            let index = self.next_spread(count);
                            sticky.push((message.topic.clone(), index));
                            index
                        }
                    },
                };
                let partition = partition_topic(&message.topic, index);
                (Some(index), with_topic(message, partition))
            };
            if run.last().is_some_and(|last| last.topic != routed.topic) {
                self.publish_run(&run, run_index, &mut ids).await?;
                run.clear();
            }
            run_index = index;
            run.push(routed);
        }
        self.publish_run(&run, run_index, &mut ids).await?;
        Ok(ids)
    }

    async fn schedule(
        &self,
        message: &Message,
        deliver_at: DateTime<Utc>,
    ) -> Result<(), BackendError> {
        let record = self.record_of(&message.topic, true).await?;
        if record == 1 {
            return self.inner.schedule(message, deliver_at).await;
        }
        let index = self.route(message, record);
        self.inner
            .schedule(
                &with_topic(message, partition_topic(&message.topic, index)),
                deliver_at,
            )
            .await
            .map_err(|error| named_after(error, &message.topic))
    }

    async fn ensure_group(
        &self,
        topic: &Topic,
        group: &str,
        start: StartFrom,
    ) -> Result<(), BackendError> {
        let count = self.partition_count(topic).await?;
        if count == 1 {
            return self.inner.ensure_group(topic, group, start).await;
        }
        for partition in partitions(topic, count) {
            self.inner.ensure_group(&partition, group, start).await?;
        }
        Ok(())
    }

    async fn read(
        &self,
        consumer: &ConsumerId,
        options: &ReadOptions,
    ) -> Result<Vec<Delivery>, BackendError> {
        let record = self.record_of(&consumer.topic, true).await?;
        let (count, prioritized) = layout(record);
        if count == 1 {
            return self.inner.read(consumer, options).await;
        }
        match &options.from {
            ReadFrom::New => self.read_new(consumer, options, count, prioritized).await,
            ReadFrom::OwnPending { after } => {
                self.read_own_pending(consumer, after.as_deref(), options, count)
                    .await
            }
        }
    }

    async fn reclaim_idle(
        &self,
        consumer: &ConsumerId,
        min_idle: Duration,
        count: usize,
    ) -> Result<Vec<Delivery>, BackendError> {
        let partitions = self.partition_count(&consumer.topic).await?;
        if partitions == 1 {
            return self.inner.reclaim_idle(consumer, min_idle, count).await;
        }
        let start = self.next_spread(partitions);
        let mut taken = Vec::new();
        for step in 0..partitions {
            let wanted = count.max(1) - taken.len();
            if wanted == 0 {
                break;
            }
            let index = (start + step) % partitions;
            let part = partition_consumer(consumer, index);
            let reclaimed = self.inner.reclaim_idle(&part, min_idle, wanted).await?;
            taken.extend(reclaimed.into_iter().map(|d| outward(d, consumer, index)));
        }
        Ok(taken)
    }

    async fn extend_lease(&self, receipt: &Receipt) -> Result<Settlement, BackendError> {
        match Self::inward(receipt)? {
            Some(inner) => self.inner.extend_lease(&inner).await,
            None => self.inner.extend_lease(receipt).await,
        }
    }

    async fn ack(&self, receipt: &Receipt) -> Result<Settlement, BackendError> {
        match Self::inward(receipt)? {
            Some(inner) => self.inner.ack(&inner).await,
            None => self.inner.ack(receipt).await,
        }
    }

    async fn retry_at(
        &self,
        receipt: &Receipt,
        message: &Message,
        deliver_at: DateTime<Utc>,
    ) -> Result<Settlement, BackendError> {
        match Self::inward(receipt)? {
            Some(inner) => {
                let message = with_topic(message, inner.topic().clone());
                self.inner.retry_at(&inner, &message, deliver_at).await
            }
            None => self.inner.retry_at(receipt, message, deliver_at).await,
        }
    }

    async fn dead_letter(
        &self,
        receipt: &Receipt,
        message: &Message,
        error: &str,
    ) -> Result<Settlement, BackendError> {
        match Self::inward(receipt)? {
            Some(inner) => {
                let message = with_topic(message, inner.topic().clone());
                self.inner.dead_letter(&inner, &message, error).await
            }
            None => self.inner.dead_letter(receipt, message, error).await,
        }
    }

    fn cancel_backend(&self) -> Option<&dyn CancelBackend> {
        self.inner
            .cancel_backend()
            .map(|_| self as &dyn CancelBackend)
    }

    fn unique_backend(&self) -> Option<&dyn UniqueBackend> {
        self.inner
            .unique_backend()
            .map(|_| self as &dyn UniqueBackend)
    }

    /// A pause is kept once, on the base topic in the inner backend (never on
    /// its partitions): the runtime reads a partitioned topic as its base, so
    /// one pause holds every partition at once.
    fn pause_backend(&self) -> Option<&dyn crate::PauseBackend> {
        self.inner.pause_backend()
    }

    /// Buckets are named by limit and key, not by topic: the inner backend's.
    fn limit_backend(&self) -> Option<&dyn crate::limit::LimitBackend> {
        self.inner.limit_backend()
    }
}

#[async_trait]
impl<B: Backend + PartitionRegistry> BackendAdmin for Partitioned<B> {
    async fn create_topic(&self, topic: &Topic) -> Result<(), BackendError> {
        let count = self.partition_count(topic).await?;
        if count == 1 {
            return self.inner.create_topic(topic).await;
        }
        for partition in partitions(topic, count) {
            self.inner.create_topic(&partition).await?;
        }
        Ok(())
    }

    async fn create_partitioned_topic(
        &self,
        topic: &Topic,
        partitions: u16,
    ) -> Result<(), BackendError> {
        Partitioned::create_partitioned_topic(self, topic, partitions).await
    }

    async fn partitions(&self, topic: &Topic) -> Result<u16, BackendError> {
        self.existing_partition_count(topic).await
    }

    async fn create_priority_topic(&self, topic: &Topic) -> Result<(), BackendError> {
        Partitioned::create_priority_topic(self, topic).await
    }

    async fn is_priority_topic(&self, topic: &Topic) -> Result<bool, BackendError> {
        Partitioned::is_priority_topic(self, topic).await
    }

    async fn delete_topic(&self, topic: &Topic) -> Result<bool, BackendError> {
        let count = self.existing_partition_count(topic).await?;
        if count == 1 {
            return self.inner.delete_topic(topic).await;
        }
        let mut deleted = false;
        for partition in partitions(topic, count) {
            deleted |= self.inner.delete_topic(&partition).await?;
        }
        // Its pauses live on the base topic (see `pause_backend`).
        if let Some(pause) = self.inner.pause_backend() {
            pause.set_paused(topic, None, false).await?;
        }
        self.inner.forget_partitions(topic).await?;
        self.forget(topic);
        Ok(deleted)
    }

    async fn list_topics(&self) -> Result<Vec<Topic>, BackendError> {
        let topics: BTreeSet<Topic> = self
            .inner
            .list_topics()
            .await?
            .iter()
            .map(Topic::base)
            .collect();
        Ok(topics.into_iter().collect())
    }

    async fn delete_group(&self, topic: &Topic, group: &str) -> Result<bool, BackendError> {
        let count = self.existing_partition_count(topic).await?;
        if count == 1 {
            return self.inner.delete_group(topic, group).await;
        }
        let mut deleted = false;
        for partition in partitions(topic, count) {
            deleted |= self.inner.delete_group(&partition, group).await?;
        }
        Ok(deleted)
    }

    async fn dead_letters(
        &self,
        topic: &Topic,
        limit: usize,
    ) -> Result<Vec<DeadLetter>, BackendError> {
        let count = self.existing_partition_count(topic).await?;
        if count == 1 {
            return self.inner.dead_letters(topic, limit).await;
        }
        let mut all = Vec::new();
        for index in 0..count {
            let partition = partition_topic(topic, index);
            for mut dead in self.inner.dead_letters(&partition, limit).await? {
                dead.id = join_id(index, &dead.id);
                dead.message.topic = topic.clone();
                all.push(dead);
            }
        }
        all.sort_by(|a, b| a.dead_at.cmp(&b.dead_at).then_with(|| a.id.cmp(&b.id)));
        all.truncate(limit);
        Ok(all)
    }

    /// A partitioned topic pages partition by partition (each oldest first),
    /// its ids `PARTITION:ID`.
    async fn dead_letters_after(
        &self,
        topic: &Topic,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<DeadLetter>, BackendError> {
        let count = self.existing_partition_count(topic).await?;
        if count == 1 {
            return self.inner.dead_letters_after(topic, after, limit).await;
        }
        let (mut index, mut inner_after) = match after {
            None => (0, None),
            Some(id) => {
                let (index, inner) = split_id(id, topic).map_err(|_| {
                    BackendError::command(
                        "`after` is no dead-letter id of this partitioned topic (PARTITION:ID)",
                    )
                })?;
                (index, Some(inner.to_owned()))
            }
        };
        let mut page = Vec::new();
        while index < count && page.len() < limit {
            let partition = partition_topic(topic, index);
            let want = limit - page.len();
            for mut dead in self
                .inner
                .dead_letters_after(&partition, inner_after.as_deref(), want)
                .await?
            {
                dead.id = join_id(index, &dead.id);
                dead.message.topic = topic.clone();
                page.push(dead);
            }
            index += 1;
            inner_after = None;
        }
        Ok(page)
    }

    /// A partitioned topic's id is `PARTITION:ID`: looked up in that partition.
    async fn find_dead_letter(
        &self,
        topic: &Topic,
        id: &str,
    ) -> Result<Option<DeadLetter>, BackendError> {
        let count = self.existing_partition_count(topic).await?;
        if count == 1 {
            return self.inner.find_dead_letter(topic, id).await;
        }
        let Ok((index, inner_id)) = split_id(id, topic) else {
            return Ok(None);
        };
        if index >= count {
            return Ok(None);
        }
        let found = self
            .inner
            .find_dead_letter(&partition_topic(topic, index), inner_id)
            .await?;
        Ok(found.map(|mut dead| {
            dead.id = join_id(index, &dead.id);
            dead.message.topic = topic.clone();
            dead
        }))
    }

    async fn replay_dead_letter(&self, topic: &Topic, id: &str) -> Result<bool, BackendError> {
        let count = self.existing_partition_count(topic).await?;
        if count == 1 {
            return self.inner.replay_dead_letter(topic, id).await;
        }
        let Ok((index, inner_id)) = split_id(id, topic) else {
            return Ok(false);
        };
        if index >= count {
            return Ok(false);
        }
        self.inner
            .replay_dead_letter(&partition_topic(topic, index), inner_id)
            .await
    }

    async fn purge_dead_letters(&self, topic: &Topic) -> Result<u64, BackendError> {
        let count = self.existing_partition_count(topic).await?;
        if count == 1 {
            return self.inner.purge_dead_letters(topic).await;
        }
        let mut purged = 0;
        for partition in partitions(topic, count) {
            purged += self.inner.purge_dead_letters(&partition).await?;
        }
        Ok(purged)
    }

    async fn stats(&self, topic: &Topic) -> Result<TopicStats, BackendError> {
        let count = self.existing_partition_count(topic).await?;
        if count == 1 {
            return self.inner.stats(topic).await;
        }
        let mut total = TopicStats {
            topic: topic.to_string(),
            length: 0,
            scheduled: 0,
            dead_lettered: 0,
            groups: Vec::new(),
            paused: false,
        };
        let paused = match self.inner.pause_backend() {
            Some(pause) => pause.pause_state(topic).await?,
            None => crate::PauseState::default(),
        };
        total.paused = paused.all;
        let mut groups: BTreeMap<String, GroupStats> = BTreeMap::new();
        for partition in partitions(topic, count) {
            let stats = self.inner.stats(&partition).await?;
            total.length += stats.length;
            total.scheduled += stats.scheduled;
            total.dead_lettered += stats.dead_lettered;
            for group in stats.groups {
                let sum = groups.entry(group.name.clone()).or_insert(GroupStats {
                    name: group.name.clone(),
                    pending: 0,
                    lag: 0,
                    consumers: 0,
                    paused: paused.is_paused(&group.name),
                });
                sum.pending += group.pending;
                sum.lag += group.lag;
                // The same consumers read every partition.
                sum.consumers = sum.consumers.max(group.consumers);
            }
        }
        total.groups = groups.into_values().collect();
        Ok(total)
    }

    async fn health(&self) -> Result<BackendHealth, BackendError> {
        self.inner.health().await
    }
}

#[async_trait]
impl<B: Backend + PartitionRegistry> CancelBackend for Partitioned<B> {
    async fn cancel(&self, topic: &Topic, id: Uuid) -> Result<bool, BackendError> {
        let Some(cancel) = self.inner.cancel_backend() else {
            return Ok(false);
        };
        let count = self.existing_partition_count(topic).await?;
        if count == 1 {
            return cancel.cancel(topic, id).await;
        }
        // The message went to one partition; which one is not recorded.
        let mut cancelled = false;
        for partition in partitions(topic, count) {
            cancelled |= cancel.cancel(&partition, id).await?;
        }
        Ok(cancelled)
    }
}

#[async_trait]
impl<B: Backend + PartitionRegistry> UniqueBackend for Partitioned<B> {
    async fn publish_unique(
        &self,
        message: &Message,
        deliver_at: Option<DateTime<Utc>>,
        key: &str,
        hold: Duration,
    ) -> Result<Option<Uuid>, BackendError> {
        let unique = self
            .inner
            .unique_backend()
            .expect("offered only over a backend with unique jobs");
        let (count, prioritized) = layout(self.record_of(&message.topic, true).await?);
        if count == 1 {
            return unique.publish_unique(message, deliver_at, key, hold).await;
        }
        // The unique key chooses the partition: its lock lives beside it. In a
        // priority topic the priority does, so a key is unique per priority.
        let index = if prioritized {
            crate::priority::Priority::of(message).lane()
        } else {
            index_of(key, count)
        };
        let partition = partition_topic(&message.topic, index);
        unique
            .publish_unique(&with_topic(message, partition), deliver_at, key, hold)
            .await
    }

    async fn unique_holder(&self, topic: &Topic, key: &str) -> Result<Option<Uuid>, BackendError> {
        let unique = self
            .inner
            .unique_backend()
            .expect("offered only over a backend with unique jobs");
        let (count, prioritized) = layout(self.record_of(topic, false).await?);
        if count == 1 {
            return unique.unique_holder(topic, key).await;
        }
        if prioritized {
            for lane in 0..count {
                if let Some(holder) = unique
                    .unique_holder(&partition_topic(topic, lane), key)
                    .await?
                {
                    return Ok(Some(holder));
                }
            }
            return Ok(None);
        }
        unique
            .unique_holder(&partition_topic(topic, index_of(key, count)), key)
            .await
    }

    async fn release_unique(
        &self,
        topic: &Topic,
        key: &str,
        id: Uuid,
        after: Duration,
    ) -> Result<bool, BackendError> {
        let unique = self
            .inner
            .unique_backend()
            .expect("offered only over a backend with unique jobs");
        let (count, prioritized) = layout(self.record_of(topic, false).await?);
        if count == 1 {
            return unique.release_unique(topic, key, id, after).await;
        }
        if prioritized {
            // Only the lane whose lock `id` holds releases anything.
            let mut released = false;
            for lane in 0..count {
                released |= unique
                    .release_unique(&partition_topic(topic, lane), key, id, after)
                    .await?;
            }
            return Ok(released);
        }
        unique
            .release_unique(
                &partition_topic(topic, index_of(key, count)),
                key,
                id,
                after,
            )
            .await
    }
}

/// A schedule of a partitioned topic ticks into one partition, chosen by its
/// name: the backend keeps the schedule, its mark and the ticks' stream
/// together (one slot on a Redis Cluster), and listing names the topic.
#[async_trait]
impl<B: Backend + PartitionRegistry + ScheduleBackend> ScheduleBackend for Partitioned<B> {
    async fn save_schedule(&self, schedule: &Schedule) -> Result<(), BackendError> {
        let schedule = self.schedule_inward(schedule).await?;
        self.inner.save_schedule(&schedule).await
    }

    async fn remove_schedule(&self, name: &str) -> Result<bool, BackendError> {
        self.inner.remove_schedule(name).await
    }

    async fn schedules(&self) -> Result<Vec<ScheduleState>, BackendError> {
        let mut states = self.inner.schedules().await?;
        for state in &mut states {
            if let Some((base, _)) = state.schedule.topic.split_once('#') {
                state.schedule.topic = base.to_owned();
            }
        }
        Ok(states)
    }

    async fn set_schedule_paused(&self, name: &str, paused: bool) -> Result<bool, BackendError> {
        self.inner.set_schedule_paused(name, paused).await
    }

    async fn fire_tick(
        &self,
        schedule: &Schedule,
        tick: DateTime<Utc>,
        message: &Message,
    ) -> Result<bool, BackendError> {
        let schedule = self.schedule_inward(schedule).await?;
        let message = match Topic::new(schedule.topic.as_str()) {
            Ok(topic) if topic != message.topic => with_topic(message, topic),
            _ => message.clone(),
        };
        self.inner
            .fire_tick(&schedule, tick, &message)
            .await
            .map_err(|error| named_after(error, &message.topic.base()))
    }

    async fn skip_to_tick(
        &self,
        schedule: &Schedule,
        tick: DateTime<Utc>,
    ) -> Result<bool, BackendError> {
        let schedule = self.schedule_inward(schedule).await?;
        self.inner.skip_to_tick(&schedule, tick).await
    }
}

impl<B: Backend + PartitionRegistry> Partitioned<B> {
    /// The schedule as the backend keeps it: its topic's partition of its name.
    async fn schedule_inward(&self, schedule: &Schedule) -> Result<Schedule, BackendError> {
        let Ok(topic) = Topic::new(schedule.topic.as_str()) else {
            return Ok(schedule.clone());
        };
        let count = self.partition_count(&topic).await?;
        let mut schedule = schedule.clone();
        if count > 1 {
            schedule.topic = partition_topic(&topic, index_of(&schedule.name, count)).into_string();
        }
        Ok(schedule)
    }
}

#[async_trait]
impl<B: Backend + PartitionRegistry> PartitionRegistry for Partitioned<B> {
    async fn recorded_partitions(&self, topic: &Topic) -> Result<Option<u16>, BackendError> {
        self.inner.recorded_partitions(topic).await
    }

    async fn record_partitions(&self, topic: &Topic, count: u16) -> Result<u16, BackendError> {
        self.inner.record_partitions(topic, count).await
    }

    async fn forget_partitions(&self, topic: &Topic) -> Result<(), BackendError> {
        self.forget(topic);
        self.inner.forget_partitions(topic).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_always_lands_in_the_same_partition_and_keys_spread() {
        assert_eq!(index_of("customer-42", 6), index_of("customer-42", 6));
        let used: BTreeSet<u16> = (0..600).map(|i| index_of(&format!("k{i}"), 6)).collect();
        assert_eq!(used.len(), 6, "600 keys cover 6 partitions");
        // Stable across releases: moving keys would break per-key order.
        assert_eq!(index_of("", 7), (0xcbf2_9ce4_8422_2325u64 % 7) as u16);
    }

    #[test]
    fn partition_ids_round_trip_and_bad_ones_are_corrupt() {
        let topic = Topic::new("orders").unwrap();
        assert_eq!(split_id(&join_id(3, "17-0"), &topic).unwrap(), (3, "17-0"));
        assert!(matches!(
            split_id("17-0", &topic),
            Err(BackendError::Corrupt { .. })
        ));
        assert!(check_count(0).is_err());
        assert!(check_count(MAX_PARTITIONS).is_err());
        assert!(check_count(6).is_ok());
    }
}
