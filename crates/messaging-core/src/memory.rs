//! The in-memory backend: the embedded default, with the same semantics as the
//! Redis Streams backend (groups, pending lists, visibility timeouts, delays,
//! dead letters), kept in this process.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use messaging_model::{Message, MessageStatus, Topic};
use tokio::sync::Notify;

use crate::backend::{
    BackendAdmin, BackendHealth, ConsumerId, DeadLetter, Delivery, GroupStats, MessageBackend,
    ReadFrom, ReadOptions, Receipt, Settlement, StartFrom, TopicStats,
};
use crate::{BackendError, DEFAULT_TOPIC_CAP, Retention};

/// Messages kept in this process, shared by every clone.
///
/// Share one backend (it is `Clone`, an `Arc` inside) between service instances to
/// model a restart: scheduled and pending messages survive the service, though
/// not the process.
///
/// Trimming follows a [`Retention`] (default: lossless, only entries every group
/// settled, none while a topic has no group), and each topic holds at most its cap
/// of messages ([`DEFAULT_TOPIC_CAP`]), beyond which publishing fails with
/// [`BackendError::QueueFull`], as on Redis.
///
/// ```
/// use std::sync::Arc;
/// use messaging_core::{InMemoryBackend, MessagingService};
///
/// let backend = InMemoryBackend::new();
/// let service = MessagingService::new(Arc::new(backend.clone()));
/// # let _ = service;
/// ```
#[derive(Clone)]
pub struct InMemoryBackend {
    state: Arc<Mutex<State>>,
    retention: Retention,
    cap: usize,
    schedules: Arc<Mutex<Schedules>>,
    /// Held unique keys, by (topic, key): the holder and until when.
    unique: Arc<Mutex<UniqueLocks>>,
    /// Partition counts recorded, by topic (see [`crate::Partitioned`]).
    partitions: Arc<Mutex<BTreeMap<Topic, u16>>>,
    /// Paused groups, by topic (see [`crate::PauseBackend`]).
    paused: Arc<Mutex<BTreeMap<Topic, crate::PauseState>>>,
    /// Buckets of flow limits (see [`crate::limit`]).
    limits: Arc<crate::limit::MemoryLimits>,
}

/// Held unique keys, by (topic, key): the holder and until when.
type UniqueLocks = BTreeMap<(String, String), (uuid::Uuid, Instant)>;

/// Schedules and their marks (the last tick published or skipped), by name.
#[derive(Default)]
struct Schedules {
    definitions: BTreeMap<String, crate::schedule::Schedule>,
    marks: BTreeMap<String, DateTime<Utc>>,
}

impl Default for InMemoryBackend {
    fn default() -> Self {
        Self {
            state: Arc::default(),
            retention: Retention::default(),
            cap: DEFAULT_TOPIC_CAP,
            schedules: Arc::default(),
            unique: Arc::default(),
            partitions: Arc::default(),
            paused: Arc::default(),
            limits: Arc::default(),
        }
    }
}

impl std::fmt::Debug for InMemoryBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InMemoryBackend").finish_non_exhaustive()
    }
}

#[derive(Default)]
struct State {
    topics: BTreeMap<Topic, TopicState>,
}

struct TopicState {
    next_seq: u64,
    entries: BTreeMap<u64, Message>,
    groups: BTreeMap<String, GroupState>,
    scheduled: BTreeMap<(DateTime<Utc>, u64), Message>,
    next_scheduled: u64,
    dead: BTreeMap<u64, DeadLetter>,
    next_dead: u64,
    arrived: Arc<Notify>,
}

struct GroupState {
    last_delivered: u64,
    pending: BTreeMap<u64, PendingEntry>,
}

struct PendingEntry {
    consumer: String,
    delivered_at: Instant,
    delivery_count: u32,
}

impl TopicState {
    fn new() -> Self {
        Self {
            next_seq: 1,
            entries: BTreeMap::new(),
            groups: BTreeMap::new(),
            scheduled: BTreeMap::new(),
            next_scheduled: 0,
            dead: BTreeMap::new(),
            next_dead: 1,
            arrived: Arc::new(Notify::new()),
        }
    }

    fn append(&mut self, message: Message, retention: Retention) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.entries.insert(seq, message);
        self.trim(retention);
        seq
    }

    /// Messages the topic holds against its cap: stream entries and delayed ones.
    fn held(&self) -> usize {
        self.entries.len() + self.scheduled.len()
    }

    /// Refuses `count` more messages when they would take the topic past `cap`.
    fn check_cap(
        &self,
        topic: &str,
        count: usize,
        cap: usize,
        written: usize,
    ) -> Result<(), BackendError> {
        if self.held().saturating_add(count) > cap {
            return Err(BackendError::QueueFull {
                topic: topic.to_owned(),
                cap: cap as u64,
                written,
            });
        }
        Ok(())
    }

    /// Drops the oldest entries as `retention` allows. Losslessly
    /// ([`Retention::Settled`]), only those every group has received and settled,
    /// and none while there is no group; lossily ([`Retention::DropUnreadAfter`]),
    /// unread ones too. An entry some group has pending is never dropped.
    fn trim(&mut self, retention: Retention) {
        let (keep, unread_too) = match retention {
            Retention::Settled { keep } => (keep, false),
            Retention::DropUnreadAfter { len } => (len, true),
            Retention::KeepAll => return,
        };
        if !unread_too && self.groups.is_empty() {
            return;
        }
        while self.entries.len() > keep {
            let Some((&oldest, _)) = self.entries.first_key_value() else {
                return;
            };
            let removable = self.groups.values().all(|group| {
                (unread_too || group.last_delivered >= oldest)
                    && !group.pending.contains_key(&oldest)
            });
            if !removable {
                return;
            }
            self.entries.remove(&oldest);
        }
    }

    /// Moves scheduled messages whose time has come into the stream.
    fn promote_due(&mut self, now: DateTime<Utc>, retention: Retention) -> usize {
        let mut promoted = 0;
        while let Some(entry) = self.scheduled.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let mut message = entry.remove();
            message.status = MessageStatus::Pending;
            self.append(message, retention);
            promoted += 1;
        }
        promoted
    }

    fn next_due(&self) -> Option<DateTime<Utc>> {
        self.scheduled.first_key_value().map(|((at, _), _)| *at)
    }

    fn owned_pending(&mut self, receipt: &Receipt) -> Option<(&mut GroupState, u64)> {
        let seq: u64 = receipt.entry_id.parse().ok()?;
        let group = self.groups.get_mut(&receipt.consumer.group)?;
        let entry = group.pending.get(&seq)?;
        (entry.consumer == receipt.consumer.consumer
            && entry.delivery_count == receipt.delivery_count)
            .then_some((group, seq))
    }

    fn delivery(
        &self,
        topic: &Topic,
        group: &str,
        seq: u64,
        pending: &PendingEntry,
    ) -> Option<Delivery> {
        let mut message = self.entries.get(&seq)?.clone();
        message.status = MessageStatus::Processing;
        Some(Delivery {
            message,
            receipt: Receipt {
                consumer: ConsumerId::new(topic.clone(), group, pending.consumer.clone()),
                entry_id: seq.to_string(),
                delivery_count: pending.delivery_count,
            },
        })
    }
}

impl InMemoryBackend {
    /// An empty backend.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets what trimming may remove (default: [`Retention::Settled`] keeping
    /// 10,000, lossless).
    pub fn with_retention(mut self, retention: Retention) -> Self {
        self.retention = retention;
        self
    }

    /// Sets the most messages a topic holds, stream and delayed together, before
    /// publishing is refused with [`BackendError::QueueFull`] (default
    /// [`DEFAULT_TOPIC_CAP`]; at least 1).
    pub fn with_topic_cap(mut self, cap: usize) -> Self {
        self.cap = cap.max(1);
        self
    }

    fn paused_lock(&self) -> MutexGuard<'_, BTreeMap<Topic, crate::PauseState>> {
        self.paused
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the maps half-written in a
        // way that matters more than losing the whole backend, so keep going.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn settle(
        &self,
        receipt: &Receipt,
        then: impl FnOnce(&mut TopicState, Message),
    ) -> Result<Settlement, BackendError> {
        let mut state = self.lock();
        let Some(topic) = state.topics.get_mut(receipt.topic().as_str()) else {
            return Ok(Settlement::LostOwnership);
        };
        let Some((group, seq)) = topic.owned_pending(receipt) else {
            return Ok(Settlement::LostOwnership);
        };
        group.pending.remove(&seq);
        let message = topic.entries.get(&seq).cloned();
        if let Some(message) = message {
            then(topic, message);
        }
        topic.trim(self.retention);
        Ok(Settlement::Settled)
    }
}

#[async_trait]
impl MessageBackend for InMemoryBackend {
    fn name(&self) -> &'static str {
        "memory"
    }

    async fn publish(&self, message: &Message) -> Result<String, BackendError> {
        let mut state = self.lock();
        let topic = state
            .topics
            .entry(message.topic.clone())
            .or_insert_with(TopicState::new);
        topic.check_cap(&message.topic, 1, self.cap, 0)?;
        let seq = topic.append(message.clone(), self.retention);
        topic.arrived.notify_waiters();
        Ok(seq.to_string())
    }

    async fn publish_batch(&self, messages: &[Message]) -> Result<Vec<String>, BackendError> {
        let mut state = self.lock();
        let mut ids = Vec::with_capacity(messages.len());
        // Each run of consecutive messages of one topic is all or nothing against
        // the topic's cap, as on Redis; the first run refused ends the batch.
        for run in messages.chunk_by(|a, b| a.topic == b.topic) {
            let name = &run[0].topic;
            let topic = state
                .topics
                .entry(name.clone())
                .or_insert_with(TopicState::new);
            topic.check_cap(name, run.len(), self.cap, ids.len())?;
            for message in run {
                ids.push(topic.append(message.clone(), self.retention).to_string());
            }
            topic.arrived.notify_waiters();
        }
        Ok(ids)
    }

    async fn schedule(
        &self,
        message: &Message,
        deliver_at: DateTime<Utc>,
    ) -> Result<(), BackendError> {
        let mut state = self.lock();
        let topic = state
            .topics
            .entry(message.topic.clone())
            .or_insert_with(TopicState::new);
        topic.check_cap(&message.topic, 1, self.cap, 0)?;
        let key = (deliver_at, topic.next_scheduled);
        topic.next_scheduled += 1;
        topic.scheduled.insert(key, message.clone());
        // Wake blocked readers so they shorten their wait to the new due time.
        topic.arrived.notify_waiters();
        Ok(())
    }

    async fn ensure_group(
        &self,
        topic: &Topic,
        group: &str,
        start: StartFrom,
    ) -> Result<(), BackendError> {
        let mut state = self.lock();
        let topic = state
            .topics
            .entry(topic.clone())
            .or_insert_with(TopicState::new);
        let last_delivered = match start {
            StartFrom::Earliest => 0,
            StartFrom::Latest => topic.next_seq - 1,
        };
        topic.groups.entry(group.to_owned()).or_insert(GroupState {
            last_delivered,
            pending: BTreeMap::new(),
        });
        Ok(())
    }

    async fn read(
        &self,
        consumer_id: &ConsumerId,
        options: &ReadOptions,
    ) -> Result<Vec<Delivery>, BackendError> {
        let ConsumerId {
            topic: topic_name,
            group: group_name,
            consumer,
        } = consumer_id;
        let ReadOptions {
            from, count, block, ..
        } = options;
        let (count, block) = (*count, *block);
        let deadline = Instant::now() + block;
        loop {
            let notify = {
                let mut state = self.lock();
                let topic = state
                    .topics
                    .entry(topic_name.clone())
                    .or_insert_with(TopicState::new);
                topic.arrived.clone()
            };
            // Register for the wake-up before looking, so a publish between the look
            // and the wait is not missed.
            let notified = notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let wait = {
                let mut state = self.lock();
                let topic = state
                    .topics
                    .entry(topic_name.clone())
                    .or_insert_with(TopicState::new);
                let now = Utc::now();
                topic.promote_due(now, self.retention);
                // A group that vanished with its topic is recreated, as after NOGROUP.
                let group = topic
                    .groups
                    .entry(group_name.clone())
                    .or_insert(GroupState {
                        last_delivered: 0,
                        pending: BTreeMap::new(),
                    });
                let mut taken = Vec::new();
                match from {
                    ReadFrom::OwnPending { after } => {
                        let after: u64 = after.as_deref().and_then(|a| a.parse().ok()).unwrap_or(0);
                        for (seq, entry) in group.pending.range_mut(after + 1..) {
                            if taken.len() >= count {
                                break;
                            }
                            if entry.consumer == *consumer {
                                entry.delivery_count += 1;
                                entry.delivered_at = Instant::now();
                                taken.push(*seq);
                            }
                        }
                    }
                    ReadFrom::New => {
                        let start = group.last_delivered + 1;
                        let fresh: Vec<u64> = topic
                            .entries
                            .range(start..)
                            .take(count)
                            .map(|(seq, _)| *seq)
                            .collect();
                        for seq in fresh {
                            group.last_delivered = seq;
                            group.pending.insert(
                                seq,
                                PendingEntry {
                                    consumer: consumer.clone(),
                                    delivered_at: Instant::now(),
                                    delivery_count: 1,
                                },
                            );
                            taken.push(seq);
                        }
                    }
                }
                let group = &topic.groups[group_name.as_str()];
                let deliveries: Vec<Delivery> = taken
                    .iter()
                    .filter_map(|seq| {
                        topic.delivery(topic_name, group_name, *seq, &group.pending[seq])
                    })
                    .collect();
                let now_instant = Instant::now();
                if !deliveries.is_empty()
                    || matches!(from, ReadFrom::OwnPending { .. })
                    || now_instant >= deadline
                {
                    return Ok(deliveries);
                }
                let mut wait = deadline - now_instant;
                if let Some(due) = topic.next_due() {
                    let until_due = (due - now).to_std().unwrap_or(Duration::ZERO);
                    wait = wait.min(until_due + Duration::from_millis(1));
                }
                wait
            };
            let _ = tokio::time::timeout(wait, notified).await;
        }
    }

    async fn reclaim_idle(
        &self,
        consumer_id: &ConsumerId,
        min_idle: Duration,
        count: usize,
    ) -> Result<Vec<Delivery>, BackendError> {
        let ConsumerId {
            topic: topic_name,
            group: group_name,
            consumer,
        } = consumer_id;
        let mut state = self.lock();
        let Some(topic) = state.topics.get_mut(topic_name.as_str()) else {
            return Ok(Vec::new());
        };
        let Some(group) = topic.groups.get_mut(group_name.as_str()) else {
            return Ok(Vec::new());
        };
        let now = Instant::now();
        let mut taken = Vec::new();
        let mut vanished = Vec::new();
        for (seq, entry) in group.pending.iter_mut() {
            if taken.len() >= count {
                break;
            }
            if now.duration_since(entry.delivered_at) < min_idle {
                continue;
            }
            if !topic.entries.contains_key(seq) {
                vanished.push(*seq);
                continue;
            }
            entry.consumer = consumer.clone();
            entry.delivered_at = now;
            entry.delivery_count += 1;
            taken.push(*seq);
        }
        for seq in vanished {
            group.pending.remove(&seq);
        }
        let group = &topic.groups[group_name.as_str()];
        Ok(taken
            .iter()
            .filter_map(|seq| topic.delivery(topic_name, group_name, *seq, &group.pending[seq]))
            .collect())
    }

    async fn extend_lease(&self, receipt: &Receipt) -> Result<Settlement, BackendError> {
        let mut state = self.lock();
        let Some(topic) = state.topics.get_mut(receipt.topic().as_str()) else {
            return Ok(Settlement::LostOwnership);
        };
        let Some((group, seq)) = topic.owned_pending(receipt) else {
            return Ok(Settlement::LostOwnership);
        };
        if let Some(entry) = group.pending.get_mut(&seq) {
            entry.delivered_at = Instant::now();
        }
        Ok(Settlement::Settled)
    }

    async fn ack(&self, receipt: &Receipt) -> Result<Settlement, BackendError> {
        self.settle(receipt, |_, _| {})
    }

    async fn retry_at(
        &self,
        receipt: &Receipt,
        message: &Message,
        deliver_at: DateTime<Utc>,
    ) -> Result<Settlement, BackendError> {
        let message = message.clone();
        self.settle(receipt, move |topic, _| {
            let key = (deliver_at, topic.next_scheduled);
            topic.next_scheduled += 1;
            topic.scheduled.insert(key, message);
            topic.arrived.notify_waiters();
        })
    }

    async fn dead_letter(
        &self,
        receipt: &Receipt,
        message: &Message,
        error: &str,
    ) -> Result<Settlement, BackendError> {
        let mut message = message.clone();
        message.status = MessageStatus::Failed;
        let group = receipt.consumer.group.clone();
        let error = error.to_owned();
        self.settle(receipt, move |topic, _| {
            let id = topic.next_dead;
            topic.next_dead += 1;
            let attempts = message.retry.saturating_add(1);
            topic.dead.insert(
                id,
                DeadLetter {
                    id: id.to_string(),
                    group,
                    message,
                    error,
                    attempts,
                    dead_at: Utc::now(),
                },
            );
        })
    }

    fn cancel_backend(&self) -> Option<&dyn crate::CancelBackend> {
        Some(self)
    }

    fn unique_backend(&self) -> Option<&dyn crate::unique::UniqueBackend> {
        Some(self)
    }

    fn pause_backend(&self) -> Option<&dyn crate::PauseBackend> {
        Some(self)
    }

    fn limit_backend(&self) -> Option<&dyn crate::limit::LimitBackend> {
        Some(self)
    }
}

#[async_trait]
impl crate::limit::LimitBackend for InMemoryBackend {
    async fn reserve_permits(
        &self,
        bucket: &crate::limit::LimitBucket,
        rate: crate::limit::Rate,
        count: u32,
    ) -> Result<crate::limit::Permits, BackendError> {
        Ok(self.limits.reserve_permits(bucket, rate, count))
    }

    async fn reserve_permits_ahead(
        &self,
        bucket: &crate::limit::LimitBucket,
        rate: crate::limit::Rate,
        count: u32,
        ahead: u32,
    ) -> Result<(crate::limit::Permits, u32), BackendError> {
        Ok(self
            .limits
            .reserve_permits_ahead(bucket, rate, count, ahead))
    }

    async fn acquire_slots(
        &self,
        bucket: &crate::limit::LimitBucket,
        max: u32,
        holders: &[String],
        lease: Duration,
    ) -> Result<Vec<bool>, BackendError> {
        Ok(self.limits.acquire_slots(bucket, max, holders, lease))
    }

    async fn release_slots(
        &self,
        bucket: &crate::limit::LimitBucket,
        holders: &[String],
    ) -> Result<(), BackendError> {
        self.limits.release_slots(bucket, holders);
        Ok(())
    }
}

#[async_trait]
impl BackendAdmin for InMemoryBackend {
    async fn create_topic(&self, topic: &Topic) -> Result<(), BackendError> {
        self.lock()
            .topics
            .entry(topic.clone())
            .or_insert_with(TopicState::new);
        Ok(())
    }

    async fn delete_topic(&self, topic: &Topic) -> Result<bool, BackendError> {
        let removed = self.lock().topics.remove(topic.as_str());
        self.paused_lock().remove(topic.as_str());
        if let Some(removed) = &removed {
            removed.arrived.notify_waiters();
        }
        Ok(removed.is_some())
    }

    async fn list_topics(&self) -> Result<Vec<Topic>, BackendError> {
        Ok(self.lock().topics.keys().cloned().collect())
    }

    async fn delete_group(&self, topic: &Topic, group: &str) -> Result<bool, BackendError> {
        let mut state = self.lock();
        Ok(state
            .topics
            .get_mut(topic.as_str())
            .is_some_and(|topic| topic.groups.remove(group).is_some()))
    }

    async fn dead_letters(
        &self,
        topic: &Topic,
        limit: usize,
    ) -> Result<Vec<DeadLetter>, BackendError> {
        let state = self.lock();
        Ok(state
            .topics
            .get(topic.as_str())
            .map(|topic| topic.dead.values().take(limit).cloned().collect())
            .unwrap_or_default())
    }

    async fn dead_letters_after(
        &self,
        topic: &Topic,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<DeadLetter>, BackendError> {
        let start = match after {
            None => std::ops::Bound::Unbounded,
            Some(id) => std::ops::Bound::Excluded(id.parse::<u64>().map_err(|_| {
                BackendError::command("`after` is no dead-letter id of the in-memory backend")
            })?),
        };
        let state = self.lock();
        Ok(state
            .topics
            .get(topic.as_str())
            .map(|topic| {
                topic
                    .dead
                    .range((start, std::ops::Bound::Unbounded))
                    .map(|(_, dead)| dead.clone())
                    .take(limit)
                    .collect()
            })
            .unwrap_or_default())
    }

    async fn find_dead_letter(
        &self,
        topic: &Topic,
        id: &str,
    ) -> Result<Option<DeadLetter>, BackendError> {
        let Ok(id) = id.parse::<u64>() else {
            return Ok(None);
        };
        let state = self.lock();
        Ok(state
            .topics
            .get(topic.as_str())
            .and_then(|topic| topic.dead.get(&id).cloned()))
    }

    async fn replay_dead_letter(&self, topic_name: &Topic, id: &str) -> Result<bool, BackendError> {
        let Ok(id) = id.parse::<u64>() else {
            return Ok(false);
        };
        let mut state = self.lock();
        let Some(topic) = state.topics.get_mut(topic_name.as_str()) else {
            return Ok(false);
        };
        let Some(dead) = topic.dead.remove(&id) else {
            return Ok(false);
        };
        topic.append(dead.replay_message(), self.retention);
        topic.arrived.notify_waiters();
        Ok(true)
    }

    async fn purge_dead_letters(&self, topic: &Topic) -> Result<u64, BackendError> {
        let mut state = self.lock();
        Ok(state
            .topics
            .get_mut(topic.as_str())
            .map(|topic| std::mem::take(&mut topic.dead).len() as u64)
            .unwrap_or(0))
    }

    async fn stats(&self, topic_name: &Topic) -> Result<TopicStats, BackendError> {
        let paused = self
            .paused_lock()
            .get(topic_name.as_str())
            .cloned()
            .unwrap_or_default();
        let mut state = self.lock();
        let Some(topic) = state.topics.get_mut(topic_name.as_str()) else {
            return Ok(TopicStats {
                topic: topic_name.to_string(),
                length: 0,
                scheduled: 0,
                dead_lettered: 0,
                groups: Vec::new(),
                paused: paused.all,
            });
        };
        topic.promote_due(Utc::now(), self.retention);
        let groups = topic
            .groups
            .iter()
            .map(|(name, group)| {
                let mut consumers: Vec<&str> = group
                    .pending
                    .values()
                    .map(|p| p.consumer.as_str())
                    .collect();
                consumers.sort_unstable();
                consumers.dedup();
                GroupStats {
                    name: name.clone(),
                    pending: group.pending.len() as u64,
                    lag: topic.entries.range(group.last_delivered + 1..).count() as u64,
                    consumers: consumers.len() as u64,
                    paused: paused.is_paused(name),
                }
            })
            .collect();
        Ok(TopicStats {
            topic: topic_name.to_string(),
            length: topic.entries.len() as u64,
            scheduled: topic.scheduled.len() as u64,
            dead_lettered: topic.dead.len() as u64,
            groups,
            paused: paused.all,
        })
    }

    async fn health(&self) -> Result<BackendHealth, BackendError> {
        Ok(BackendHealth::default())
    }
}

#[async_trait]
impl crate::PauseBackend for InMemoryBackend {
    async fn set_paused(
        &self,
        topic: &Topic,
        group: Option<&str>,
        paused: bool,
    ) -> Result<bool, BackendError> {
        let mut all = self.paused_lock();
        let state = all.entry(topic.clone()).or_default();
        let changed = match (group, paused) {
            (None, true) => !std::mem::replace(&mut state.all, true),
            (None, false) => !std::mem::take(state).is_empty(),
            (Some(group), true) => state.groups.insert(group.to_owned()),
            (Some(group), false) => state.groups.remove(group),
        };
        if state.is_empty() {
            all.remove(topic.as_str());
        }
        Ok(changed)
    }

    async fn pause_state(&self, topic: &Topic) -> Result<crate::PauseState, BackendError> {
        Ok(self
            .paused_lock()
            .get(topic.as_str())
            .cloned()
            .unwrap_or_default())
    }
}

#[async_trait]
impl crate::CancelBackend for InMemoryBackend {
    async fn cancel(&self, topic_name: &Topic, id: uuid::Uuid) -> Result<bool, BackendError> {
        // Under the lock, so no read promotes or delivers a copy meanwhile.
        let mut state = self.lock();
        let Some(topic) = state.topics.get_mut(topic_name.as_str()) else {
            return Ok(false);
        };
        let before = topic.held();
        topic.scheduled.retain(|_, message| message.id != id);
        // Entries no group has read: after every group's last delivered one.
        let read_up_to = topic
            .groups
            .values()
            .map(|group| group.last_delivered)
            .max()
            .unwrap_or(0);
        topic
            .entries
            .retain(|seq, message| *seq <= read_up_to || message.id != id);
        Ok(topic.held() < before)
    }
}

impl InMemoryBackend {
    fn schedules_lock(&self) -> MutexGuard<'_, Schedules> {
        self.schedules
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[async_trait]
impl crate::schedule::ScheduleBackend for InMemoryBackend {
    async fn save_schedule(
        &self,
        schedule: &crate::schedule::Schedule,
    ) -> Result<(), BackendError> {
        self.schedules_lock()
            .definitions
            .insert(schedule.name.clone(), schedule.clone());
        Ok(())
    }

    async fn remove_schedule(&self, name: &str) -> Result<bool, BackendError> {
        let mut schedules = self.schedules_lock();
        schedules.marks.remove(name);
        Ok(schedules.definitions.remove(name).is_some())
    }

    async fn schedules(&self) -> Result<Vec<crate::schedule::ScheduleState>, BackendError> {
        let schedules = self.schedules_lock();
        Ok(schedules
            .definitions
            .values()
            .map(|schedule| {
                crate::schedule::ScheduleState::new(
                    schedule.clone(),
                    schedules.marks.get(&schedule.name).copied(),
                )
            })
            .collect())
    }

    async fn set_schedule_paused(&self, name: &str, paused: bool) -> Result<bool, BackendError> {
        Ok(match self.schedules_lock().definitions.get_mut(name) {
            Some(schedule) => {
                schedule.paused = paused;
                true
            }
            None => false,
        })
    }

    async fn fire_tick(
        &self,
        schedule: &crate::schedule::Schedule,
        tick: DateTime<Utc>,
        message: &Message,
    ) -> Result<bool, BackendError> {
        // Claim first (one process: the lock makes the claim atomic), then
        // publish; a refused publish gives the claim back.
        let previous = {
            let mut schedules = self.schedules_lock();
            let previous = schedules.marks.get(&schedule.name).copied();
            if previous.is_some_and(|mark| mark >= tick) {
                return Ok(false);
            }
            schedules.marks.insert(schedule.name.clone(), tick);
            previous
        };
        match self.publish(message).await {
            Ok(_) => Ok(true),
            Err(error) => {
                let mut schedules = self.schedules_lock();
                if schedules.marks.get(&schedule.name) == Some(&tick) {
                    match previous {
                        Some(previous) => schedules.marks.insert(schedule.name.clone(), previous),
                        None => schedules.marks.remove(&schedule.name),
                    };
                }
                Err(error)
            }
        }
    }

    async fn skip_to_tick(
        &self,
        schedule: &crate::schedule::Schedule,
        tick: DateTime<Utc>,
    ) -> Result<bool, BackendError> {
        let mut schedules = self.schedules_lock();
        if schedules
            .marks
            .get(&schedule.name)
            .is_some_and(|mark| *mark >= tick)
        {
            return Ok(false);
        }
        schedules.marks.insert(schedule.name.clone(), tick);
        Ok(true)
    }
}

impl InMemoryBackend {
    fn unique_lock(&self) -> MutexGuard<'_, UniqueLocks> {
        self.unique
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[async_trait]
impl crate::unique::UniqueBackend for InMemoryBackend {
    async fn publish_unique(
        &self,
        message: &Message,
        deliver_at: Option<DateTime<Utc>>,
        key: &str,
        hold: Duration,
    ) -> Result<Option<uuid::Uuid>, BackendError> {
        let slot = (message.topic.to_string(), key.to_owned());
        // Claim under the lock (one process: atomic), then publish; a refused
        // publish gives the claim back.
        {
            let mut unique = self.unique_lock();
            let now = Instant::now();
            if let Some((holder, until)) = unique.get(&slot)
                && *until > now
            {
                return Ok(Some(*holder));
            }
            unique.insert(slot.clone(), (message.id, now + hold));
        }
        let published = match deliver_at {
            Some(at) => self.schedule(message, at).await,
            None => self.publish(message).await.map(drop),
        };
        if let Err(error) = published {
            let mut unique = self.unique_lock();
            if unique
                .get(&slot)
                .is_some_and(|(holder, _)| *holder == message.id)
            {
                unique.remove(&slot);
            }
            return Err(error);
        }
        Ok(None)
    }

    async fn unique_holder(
        &self,
        topic: &Topic,
        key: &str,
    ) -> Result<Option<uuid::Uuid>, BackendError> {
        Ok(self
            .unique_lock()
            .get(&(topic.to_string(), key.to_owned()))
            .filter(|(_, until)| *until > Instant::now())
            .map(|(holder, _)| *holder))
    }

    async fn release_unique(
        &self,
        topic: &Topic,
        key: &str,
        id: uuid::Uuid,
        after: Duration,
    ) -> Result<bool, BackendError> {
        let mut unique = self.unique_lock();
        let slot = (topic.to_string(), key.to_owned());
        match unique.get_mut(&slot) {
            Some((holder, until)) if *holder == id => {
                if after.is_zero() {
                    unique.remove(&slot);
                } else {
                    *until = Instant::now() + after;
                }
                Ok(true)
            }
            _ => Ok(false),
        }
    }
}

#[async_trait]
impl crate::PartitionRegistry for InMemoryBackend {
    async fn recorded_partitions(&self, topic: &Topic) -> Result<Option<u16>, BackendError> {
        Ok(self.partitions_lock().get(topic).copied())
    }

    async fn record_partitions(&self, topic: &Topic, count: u16) -> Result<u16, BackendError> {
        Ok(*self.partitions_lock().entry(topic.clone()).or_insert(count))
    }

    async fn forget_partitions(&self, topic: &Topic) -> Result<(), BackendError> {
        self.partitions_lock().remove(topic);
        Ok(())
    }
}

impl InMemoryBackend {
    fn partitions_lock(&self) -> MutexGuard<'_, BTreeMap<Topic, u16>> {
        self.partitions
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
