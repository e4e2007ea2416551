use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use messaging_model::{Message, MessageStatus, Topic};
use serde::{Deserialize, Serialize};

use crate::BackendError;

/// Metadata key naming the one consumer group a retried or replayed message is for.
///
/// A retry or replay re-enters the topic's stream, where every group would see it;
/// the subscription runtime acknowledges, without handling, messages aimed at
/// another group, so the groups that already succeeded are not disturbed.
pub const TARGET_GROUP_KEY: &str = "x-target-group";
/// Metadata key holding when a retried message was scheduled to run again (RFC 3339).
pub const RETRY_AT_KEY: &str = "x-retry-at";
/// Metadata key holding the backoff chosen before a retry, in milliseconds.
pub const RETRY_DELAY_MS_KEY: &str = "x-retry-delay-ms";
/// Metadata keys only the runtime writes: [`MessagingService`](crate::MessagingService)
/// refuses a message that carries one with
/// [`ValidationError::ReservedMetadataKey`](messaging_model::ValidationError::ReservedMetadataKey).
pub const RESERVED_METADATA_KEYS: [&str; 5] = [
    TARGET_GROUP_KEY,
    RETRY_AT_KEY,
    RETRY_DELAY_MS_KEY,
    crate::limit::LIMIT_RESERVED_KEY,
    crate::limit::LIMIT_DEFERRALS_KEY,
];

/// Where a consumer reads from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadFrom {
    /// Entries never delivered to the group; the call may block until one arrives.
    New,
    /// Entries already delivered to this consumer and not yet settled (what a
    /// restarted consumer of the same name left behind), after the given entry id
    /// (`None`: from the start). Never blocks.
    OwnPending {
        /// Last entry id already seen by this scan.
        after: Option<String>,
    },
}

/// Where a new consumer group starts reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StartFrom {
    /// Every entry still retained in the topic, so nothing published before the
    /// first subscriber came up is missed.
    #[default]
    Earliest,
    /// Only entries published after the group was created.
    Latest,
}

/// One consumer of a consumer group on a topic: who reads, reclaims and settles.
///
/// ```
/// use messaging_core::ConsumerId;
/// let consumer = ConsumerId::new("orders.placed".parse().unwrap(), "billing", "worker-1");
/// assert_eq!(consumer.to_string(), "orders.placed/billing/worker-1");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ConsumerId {
    /// The topic.
    pub topic: Topic,
    /// The consumer group.
    pub group: String,
    /// The consumer's name within the group.
    pub consumer: String,
}

impl ConsumerId {
    /// The consumer `consumer` of `group` on `topic`.
    pub fn new(topic: Topic, group: impl Into<String>, consumer: impl Into<String>) -> Self {
        Self {
            topic,
            group: group.into(),
            consumer: consumer.into(),
        }
    }
}

impl std::fmt::Display for ConsumerId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}/{}", self.topic, self.group, self.consumer)
    }
}

/// How [`MessageBackend::read`] reads: where from, how many, how long to wait.
///
/// ```
/// use std::time::Duration;
/// use messaging_core::{ReadFrom, ReadOptions};
/// let options = ReadOptions::default().with_count(10).with_block(Duration::from_millis(500));
/// assert_eq!((options.from, options.count, options.block), (ReadFrom::New, 10, Duration::from_millis(500)));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReadOptions {
    /// Where to read from (default [`ReadFrom::New`]).
    pub from: ReadFrom,
    /// Most deliveries returned (default 1).
    pub count: usize,
    /// With [`ReadFrom::New`], how long to wait for the first one (default: no wait).
    pub block: Duration,
}

impl Default for ReadOptions {
    fn default() -> Self {
        Self {
            from: ReadFrom::New,
            count: 1,
            block: Duration::ZERO,
        }
    }
}

impl ReadOptions {
    /// Reads new entries, up to `count`, waiting up to `block` for the first.
    pub fn new_entries(count: usize, block: Duration) -> Self {
        Self::default().with_count(count).with_block(block)
    }

    /// Rescans this consumer's own pending entries after `after`, up to `count`.
    pub fn own_pending(after: Option<String>, count: usize) -> Self {
        Self::default()
            .with_from(ReadFrom::OwnPending { after })
            .with_count(count)
    }

    /// Sets where to read from.
    pub fn with_from(mut self, from: ReadFrom) -> Self {
        self.from = from;
        self
    }

    /// Sets the most deliveries returned.
    pub fn with_count(mut self, count: usize) -> Self {
        self.count = count;
        self
    }

    /// Sets how long a read of new entries waits for the first one.
    pub fn with_block(mut self, block: Duration) -> Self {
        self.block = block;
        self
    }
}

/// The proof of one delivery, needed to settle it.
///
/// Settling is fenced: it succeeds only while the consumer named here still owns
/// the entry with this delivery count. Once another consumer reclaimed it, the
/// first consumer's ack, retry or dead-letter does nothing and reports
/// [`Settlement::LostOwnership`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    /// The consumer holding the delivery (its topic and group).
    pub consumer: ConsumerId,
    /// The backend's id of the stream entry.
    pub entry_id: String,
    /// How many times this entry was delivered to the group, this time included.
    pub delivery_count: u32,
}

impl Receipt {
    /// The topic of the delivery.
    pub fn topic(&self) -> &Topic {
        &self.consumer.topic
    }

    /// The consumer group of the delivery.
    pub fn group(&self) -> &str {
        &self.consumer.group
    }
}

/// A message handed to a consumer, with the receipt that settles it.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// The message, with status [`MessageStatus::Processing`].
    pub message: Message,
    /// The receipt to ack, retry or dead-letter it with.
    pub receipt: Receipt,
}

/// What came of settling a delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settlement {
    /// Done.
    Settled,
    /// Another consumer owns the entry now (it was reclaimed): nothing was changed.
    LostOwnership,
}

/// A message that exhausted its retries or failed permanently.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeadLetter {
    /// The dead letter's id in the topic's dead-letter queue.
    pub id: String,
    /// The consumer group whose handler gave up.
    pub group: String,
    /// The message as it was last attempted (status `failed`).
    pub message: Message,
    /// The last error.
    pub error: String,
    /// How many attempts were made.
    pub attempts: u32,
    /// When it was dead-lettered.
    pub dead_at: DateTime<Utc>,
}

impl DeadLetter {
    /// The message to publish again on replay: pending, retry count and error
    /// cleared, aimed at the group that gave up (see [`TARGET_GROUP_KEY`]). An
    /// [`expires_at`](Message::expires_at) that has passed is cleared too (the
    /// replay is the operator's decision to run it); one still ahead is kept.
    ///
    /// ```
    /// # use messaging_core::{DeadLetter, TARGET_GROUP_KEY};
    /// # use messaging_model::{Message, MessageStatus, Topic};
    /// let mut message = Message::new("a.b", serde_json::json!({})).unwrap();
    /// message.retry = 3;
    /// message.status = MessageStatus::Failed;
    /// let dead = DeadLetter { id: "1".into(), group: "billing".into(), message,
    ///     error: "boom".into(), attempts: 4, dead_at: chrono::Utc::now() };
    /// let again = dead.replay_message();
    /// assert_eq!(again.retry, 0);
    /// assert_eq!(again.status, MessageStatus::Pending);
    /// assert_eq!(again.metadata[TARGET_GROUP_KEY], "billing");
    /// ```
    pub fn replay_message(&self) -> Message {
        let mut message = self.message.clone();
        message.status = MessageStatus::Pending;
        message.retry = 0;
        message.error = None;
        message.processed_at = None;
        message.updated_at = Utc::now();
        if message.is_expired(message.updated_at) {
            message.expires_at = None;
        }
        message.metadata.remove(RETRY_AT_KEY);
        message.metadata.remove(RETRY_DELAY_MS_KEY);
        message
            .metadata
            .insert(TARGET_GROUP_KEY.to_owned(), self.group.clone());
        message
    }
}

/// Figures of one consumer group on a topic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupStats {
    /// The group's name.
    pub name: String,
    /// Entries delivered to the group and not yet settled.
    pub pending: u64,
    /// Entries not yet delivered to the group.
    pub lag: u64,
    /// Consumers the backend knows in the group.
    pub consumers: u64,
    /// Whether the group is paused on this topic, by itself or with the whole
    /// topic (see [`PauseBackend`]): its subscriptions take nothing new.
    #[serde(default)]
    pub paused: bool,
}

/// Figures of one topic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicStats {
    /// The topic.
    pub topic: String,
    /// Entries retained in the topic's stream.
    pub length: u64,
    /// Messages waiting for their delivery time (delayed or backing off).
    pub scheduled: u64,
    /// Messages in the dead-letter queue.
    pub dead_lettered: u64,
    /// Each consumer group.
    pub groups: Vec<GroupStats>,
    /// Whether the topic is paused for every group (see [`PauseBackend`]).
    #[serde(default)]
    pub paused: bool,
}

/// What a backend reports about its own health.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackendHealth {
    /// Settings that put messages at risk (an eviction policy, say); empty when none.
    pub warnings: Vec<String>,
}

/// The hot path of a backend: storage and delivery of messages, what a
/// consumer and a publisher need (publish, read, reclaim, settle). A backend
/// (in-memory, Redis Streams, …) implements it with [`BackendAdmin`]; the
/// [`crate::MessagingService`] and its subscription runtime are built on the
/// pair ([`Backend`]), so every backend gets retries, dead letters and reclaiming.
///
/// Every backend must pass the conformance suite (`testsuite` feature).
///
/// The contract:
/// * A topic is an append-only stream of entries. Each consumer group sees every
///   entry once; within a group each entry goes to one consumer and stays
///   *pending* until it is settled by [`ack`](Self::ack),
///   [`retry_at`](Self::retry_at) or [`dead_letter`](Self::dead_letter).
/// * A pending entry idle for longer than a visibility timeout can be taken over
///   with [`reclaim_idle`](Self::reclaim_idle); the delivery count goes up by one.
/// * Settling is fenced by the [`Receipt`]: only the current owner settles.
/// * Scheduled messages become readable at or after their time, never before,
///   and live in the backend, so they survive a restart of the service.
/// * Messages handed to `publish`, `schedule`, `retry_at` and `dead_letter`
///   were checked by the caller ([`crate::MessagingService`] checks each once,
///   on the publish path); their [`Topic`] cannot be invalid. A backend does
///   not check them again.
/// * Entries the backend cannot decode are moved to the dead-letter queue by the
///   backend itself, never returned as a delivery and never dropped.
///
/// ```
/// use std::sync::Arc;
/// use messaging_core::{Backend, BackendAdmin, InMemoryBackend, MessageBackend};
///
/// fn assert_object_safe(_: Arc<dyn MessageBackend>, _: Arc<dyn BackendAdmin>, _: Arc<dyn Backend>) {}
/// let backend = Arc::new(InMemoryBackend::new());
/// assert_object_safe(backend.clone(), backend.clone(), backend);
/// ```
#[async_trait]
pub trait MessageBackend: Send + Sync + 'static {
    /// A short name for logs and health reports (`"memory"`, `"redis"`).
    fn name(&self) -> &'static str;

    /// Appends a message to its topic (creating the topic if needed) and returns
    /// the entry id. A topic that holds its cap of messages (stream and delayed
    /// together) refuses it with [`BackendError::QueueFull`], writing nothing.
    async fn publish(&self, message: &Message) -> Result<String, BackendError>;

    /// Appends several messages, in order. Each run of consecutive messages of
    /// one topic is all or nothing against that topic's cap; the first run
    /// refused ends the batch with [`BackendError::QueueFull`], whose `written`
    /// says how many messages from the start were appended. The default
    /// publishes one by one; backends override it with fewer round trips.
    async fn publish_batch(&self, messages: &[Message]) -> Result<Vec<String>, BackendError> {
        let mut ids = Vec::with_capacity(messages.len());
        for message in messages {
            match self.publish(message).await {
                Ok(id) => ids.push(id),
                Err(BackendError::QueueFull { topic, cap, .. }) => {
                    return Err(BackendError::QueueFull {
                        topic,
                        cap,
                        written: ids.len(),
                    });
                }
                Err(error) => return Err(error),
            }
        }
        Ok(ids)
    }

    /// Stores a message to be appended to its topic at `deliver_at`, never
    /// earlier; refused with [`BackendError::QueueFull`] like `publish`.
    async fn schedule(
        &self,
        message: &Message,
        deliver_at: DateTime<Utc>,
    ) -> Result<(), BackendError>;

    /// Creates a consumer group if it does not exist.
    async fn ensure_group(
        &self,
        topic: &Topic,
        group: &str,
        start: StartFrom,
    ) -> Result<(), BackendError>;

    /// Up to `options.count` deliveries for `consumer`. With [`ReadFrom::New`]
    /// it waits up to `options.block` for the first one; an empty result is not
    /// an error.
    async fn read(
        &self,
        consumer: &ConsumerId,
        options: &ReadOptions,
    ) -> Result<Vec<Delivery>, BackendError>;

    /// `consumer`'s subscription has stopped: it reads nothing more. A backend
    /// that reads on a consumer's behalf beyond the call that asked (a
    /// partitioned topic's blocking reads of its other partitions) ends those
    /// reads before this returns, so nothing is done in the consumer's name
    /// once its subscription has closed (a read that ran on could otherwise
    /// recreate the group, and the topic, after the topic was deleted). What
    /// such reads delivered stays pending and is reclaimed after the
    /// visibility timeout, like any delivery of a stopped consumer. The
    /// default does nothing.
    async fn consumer_stopped(&self, consumer: &ConsumerId) {
        let _ = consumer;
    }

    /// Takes over, for `consumer`, up to `count` entries of its group that have
    /// been pending for at least `min_idle` (their consumer is presumed dead).
    async fn reclaim_idle(
        &self,
        consumer: &ConsumerId,
        min_idle: Duration,
        count: usize,
    ) -> Result<Vec<Delivery>, BackendError>;

    /// Resets the idle time of a delivery that is still being handled, so it is
    /// not reclaimed.
    async fn extend_lease(&self, receipt: &Receipt) -> Result<Settlement, BackendError>;

    /// Acknowledges a delivery: the group is done with it.
    async fn ack(&self, receipt: &Receipt) -> Result<Settlement, BackendError>;

    /// In one atomic step, acknowledges a delivery and schedules `message` (the
    /// updated copy) to be delivered again at `deliver_at`.
    async fn retry_at(
        &self,
        receipt: &Receipt,
        message: &Message,
        deliver_at: DateTime<Utc>,
    ) -> Result<Settlement, BackendError>;

    /// In one atomic step, acknowledges a delivery and stores `message` in the
    /// topic's dead-letter queue with the last error.
    async fn dead_letter(
        &self,
        receipt: &Receipt,
        message: &Message,
        error: &str,
    ) -> Result<Settlement, BackendError>;

    /// The backend's [`CancelBackend`], if it can cancel messages by id (what
    /// [`MessagingService::cancel`](crate::MessagingService::cancel) uses).
    /// The default is `None`; a backend that implements [`CancelBackend`]
    /// returns `Some(self)`.
    fn cancel_backend(&self) -> Option<&dyn CancelBackend> {
        None
    }

    /// The backend's [`UniqueBackend`](crate::unique::UniqueBackend), if it can
    /// publish under a unique key (what
    /// [`MessagingService::publish_unique`](crate::MessagingService::publish_unique)
    /// uses, and what the runtime releases keys through). `None` by default.
    fn unique_backend(&self) -> Option<&dyn crate::unique::UniqueBackend> {
        None
    }

    /// The backend's [`PauseBackend`], if it can pause a topic for a consumer
    /// group (what [`MessagingService::pause`](crate::MessagingService::pause)
    /// uses and what the subscription runtime checks). `None` by default: the
    /// runtime then never pauses.
    fn pause_backend(&self) -> Option<&dyn PauseBackend> {
        None
    }

    /// The backend's [`LimitBackend`](crate::limit::LimitBackend), if it keeps
    /// the buckets of flow limits (what the subscription runtime enforces
    /// [`SubscribeOptions::limits`](crate::SubscribeOptions::limits) through).
    /// `None` by default: a subscription with limits is then refused with
    /// [`MessagingError::Unsupported`](crate::MessagingError::Unsupported).
    fn limit_backend(&self) -> Option<&dyn crate::limit::LimitBackend> {
        None
    }
}

/// Administration of a backend, off the hot path: topics, groups, figures,
/// health and the dead-letter queue (what operators and the CLI use).
#[async_trait]
pub trait BackendAdmin: Send + Sync + 'static {
    /// Creates a topic; creating one that exists is not an error.
    async fn create_topic(&self, topic: &Topic) -> Result<(), BackendError>;

    /// Creates `topic` with `partitions` partitions (see
    /// [`Partitioned`](crate::Partitioned), the backend wrapper that has them);
    /// a backend without partitions answers [`BackendError::InvalidPartitions`]
    /// for any count above 1.
    async fn create_partitioned_topic(
        &self,
        topic: &Topic,
        partitions: u16,
    ) -> Result<(), BackendError> {
        if partitions == 1 {
            return self.create_topic(topic).await;
        }
        Err(BackendError::InvalidPartitions {
            requested: partitions,
            reason:
                "this backend has no partitioned topics: wrap it in messaging_core::Partitioned"
                    .to_owned(),
        })
    }

    /// Creates `topic` as a priority topic (see [`crate::priority`]); a
    /// backend that is not [`Partitioned`](crate::Partitioned) answers
    /// [`BackendError::InvalidPartitions`].
    async fn create_priority_topic(&self, topic: &Topic) -> Result<(), BackendError> {
        let _ = topic;
        Err(BackendError::InvalidPartitions {
            requested: crate::priority::LANES,
            reason: "this backend has no priority topics: wrap it in messaging_core::Partitioned"
                .to_owned(),
        })
    }

    /// Whether `topic` is a priority topic.
    async fn is_priority_topic(&self, topic: &Topic) -> Result<bool, BackendError> {
        let _ = topic;
        Ok(false)
    }

    /// How many partitions `topic` has (1 unless the backend partitions).
    async fn partitions(&self, topic: &Topic) -> Result<u16, BackendError> {
        let _ = topic;
        Ok(1)
    }

    /// Deletes a topic with its groups, scheduled and dead-lettered messages.
    /// Returns whether it existed.
    async fn delete_topic(&self, topic: &Topic) -> Result<bool, BackendError>;

    /// Every topic, sorted by name.
    async fn list_topics(&self) -> Result<Vec<Topic>, BackendError>;

    /// Deletes a consumer group with its pending list (a finished `tail`, a retired
    /// service). Returns whether it existed.
    async fn delete_group(&self, topic: &Topic, group: &str) -> Result<bool, BackendError>;

    /// Up to `limit` dead letters of a topic, oldest first.
    async fn dead_letters(
        &self,
        topic: &Topic,
        limit: usize,
    ) -> Result<Vec<DeadLetter>, BackendError>;

    /// Up to `limit` dead letters of a topic that follow the one whose id is
    /// `after` (from the first for `None`), oldest first (a partitioned topic
    /// partition by partition): a page of a listing, read on the
    /// backends of this workspace without touching the dead letters before
    /// `after`, however many the topic holds. Pass the last id of a page to
    /// get the next; a short page is the last. An `after` that is no id of
    /// this backend is a [`BackendError::Command`]; one that names a dead
    /// letter since replayed or purged still pages on from where it was.
    ///
    /// The default reads every dead letter up to the page's end, for
    /// backends that cannot start in the middle.
    async fn dead_letters_after(
        &self,
        topic: &Topic,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<DeadLetter>, BackendError> {
        let Some(after) = after else {
            return self.dead_letters(topic, limit).await;
        };
        let all = self.dead_letters(topic, usize::MAX).await?;
        let start = all
            .iter()
            .position(|dead| dead.id == after)
            .map(|at| at + 1)
            .ok_or_else(|| BackendError::command("`after` names no dead letter of this topic"))?;
        Ok(all.into_iter().skip(start).take(limit).collect())
    }

    /// The dead letter of `topic` whose id is `id` (an id of
    /// [`dead_letters`](Self::dead_letters)), or `None` when the topic holds
    /// none under that id (never one, replayed or purged since, or an id that
    /// is no id of this backend). The backends of this workspace look it up
    /// directly, whatever the number of dead letters before it.
    ///
    /// The default reads the topic's dead letters until it finds it, for
    /// backends that cannot look one up.
    async fn find_dead_letter(
        &self,
        topic: &Topic,
        id: &str,
    ) -> Result<Option<DeadLetter>, BackendError> {
        Ok(self
            .dead_letters(topic, usize::MAX)
            .await?
            .into_iter()
            .find(|dead| dead.id == id))
    }

    /// Moves one dead letter back into its topic (see [`DeadLetter::replay_message`]).
    /// Returns whether it was found; a dead letter is replayed at most once.
    async fn replay_dead_letter(&self, topic: &Topic, id: &str) -> Result<bool, BackendError>;

    /// Removes every dead letter of a topic and returns how many there were.
    async fn purge_dead_letters(&self, topic: &Topic) -> Result<u64, BackendError>;

    /// Figures of one topic.
    async fn stats(&self, topic: &Topic) -> Result<TopicStats, BackendError>;

    /// Checks the backend answers, and reports risky settings.
    async fn health(&self) -> Result<BackendHealth, BackendError>;
}

/// A whole backend: the hot path and its administration, what
/// [`crate::MessagingService`] runs on as `Arc<dyn Backend>`. Implemented for
/// every type that implements both [`MessageBackend`] and [`BackendAdmin`];
/// an `Arc<dyn Backend>` coerces to `Arc<dyn MessageBackend>` or
/// `Arc<dyn BackendAdmin>` where only one side is needed.
pub trait Backend: MessageBackend + BackendAdmin {}

impl<T: MessageBackend + BackendAdmin + ?Sized> Backend for T {}

/// Cancelling a message that no consumer has received yet, by its id: an
/// optional ability of a backend, apart from [`MessageBackend`] (reached
/// through [`MessageBackend::cancel_backend`]).
///
/// The contract:
/// * every copy of the message that waits **unreceived** is removed, in one
///   atomic step per copy: delayed (scheduled, or waiting for a retry) and
///   entries of the topic's stream that no consumer group has read yet. A copy
///   is either removed or delivered, never both and never lost otherwise, even
///   while it is being promoted from the delay queue into the stream;
/// * the answer is whether anything was removed. `false` means no waiting
///   copy was found: the message was already received by a group (it is being
///   handled, or was handled, dead-lettered or cancelled), or never published
///   to this topic. A delivered message is not cancellable;
/// * a stream entry some group has read is left alone even if another group
///   has not read it yet (so no group loses half a message's deliveries).
#[async_trait]
pub trait CancelBackend: Send + Sync + 'static {
    /// Removes every unreceived copy of message `id` of `topic`; true when
    /// something was removed.
    async fn cancel(&self, topic: &Topic, id: uuid::Uuid) -> Result<bool, BackendError>;
}

/// Which consumer groups of one topic are paused (see [`PauseBackend`]).
///
/// ```
/// use messaging_core::PauseState;
/// let mut state = PauseState::default();
/// assert!(!state.is_paused("billing"));
/// state.groups.insert("billing".to_owned());
/// assert!(state.is_paused("billing") && !state.is_paused("emails"));
/// state.all = true;
/// assert!(state.is_paused("emails"));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PauseState {
    /// The whole topic is paused: every group, present and future.
    pub all: bool,
    /// Groups paused by name.
    pub groups: std::collections::BTreeSet<String>,
}

impl PauseState {
    /// Whether `group` is paused, by name or with the whole topic.
    pub fn is_paused(&self, group: &str) -> bool {
        self.all || self.groups.contains(group)
    }

    /// Whether nothing is paused.
    pub fn is_empty(&self) -> bool {
        !self.all && self.groups.is_empty()
    }
}

/// Pausing a topic for consumer groups, kept in the backend so every process
/// over it sees it: an optional ability of a backend, apart from
/// [`MessageBackend`] (reached through [`MessageBackend::pause_backend`]).
///
/// The contract:
/// * a pause names a topic and either one group or every group of the topic
///   (`None`, the topic-wide pause, which holds for groups created later too);
///   a topic need not exist to be paused, and deleting the topic forgets its
///   pauses;
/// * resuming one group removes that group's own pause only; a topic-wide
///   pause still holds it. Resuming with `None` removes every pause of the
///   topic;
/// * the backend only stores the state: the subscription runtime reads it with
///   [`pause_state`](Self::pause_state) and stops taking messages itself, so no
///   message is lost or held by a pause.
#[async_trait]
pub trait PauseBackend: Send + Sync + 'static {
    /// Pauses (`paused`) or resumes `group` of `topic` (`None`: the whole
    /// topic). Returns whether the stored state changed.
    async fn set_paused(
        &self,
        topic: &Topic,
        group: Option<&str>,
        paused: bool,
    ) -> Result<bool, BackendError>;

    /// What is paused on `topic`.
    async fn pause_state(&self, topic: &Topic) -> Result<PauseState, BackendError>;
}
