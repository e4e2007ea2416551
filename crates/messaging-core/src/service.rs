use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use messaging_model::{Message, Topic, ValidationError};
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;
use tracing::{Instrument, info_span};
use uuid::Uuid;

use crate::backend::{Backend, DeadLetter, MessageBackend, RESERVED_METADATA_KEYS, TopicStats};
use crate::subscription::Subscription;
use crate::trace_context::{TRACEPARENT_KEY, TraceContext};
use crate::{InMemoryBackend, MessageHandler, MessagingError, SubscribeOptions};

/// What [`MessagingService::health`] reports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthReport {
    /// The backend's name.
    pub backend: String,
    /// Subscriptions this service runs.
    pub subscriptions: usize,
    /// Settings that put messages at risk; empty when none.
    pub warnings: Vec<String>,
}

/// Publishes and subscribes through a [`Backend`].
///
/// Topics are given as strings and checked once, here, into a [`Topic`]; an
/// invalid name is [`MessagingError::Validation`], before the backend is asked.
///
/// ```
/// use std::time::Duration;
/// use messaging_core::{HandlerError, MessagingService};
/// use messaging_model::{topics, Message};
/// use serde_json::json;
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let service = MessagingService::in_memory();
/// let (seen, mut received) = tokio::sync::mpsc::unbounded_channel();
/// service
///     .subscribe(topics::USER_REGISTERED, move |message: Message| {
///         let seen = seen.clone();
///         async move {
///             seen.send(message.payload["user_id"].clone()).map_err(HandlerError::permanent)
///         }
///     })
///     .await?;
/// service.publish(topics::USER_REGISTERED, json!({"user_id": 7})).await?;
/// assert_eq!(received.recv().await, Some(json!(7)));
/// service.shutdown().await;
/// # Ok(()) }
/// ```
pub struct MessagingService {
    backend: Arc<dyn Backend>,
    defaults: SubscribeOptions,
    max_retry: u32,
    subscriptions: Mutex<Vec<Subscription>>,
}

impl std::fmt::Debug for MessagingService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MessagingService")
            .field("backend", &self.backend.name())
            .field("defaults", &self.defaults)
            .finish_non_exhaustive()
    }
}

impl MessagingService {
    /// A service over `backend`, subscribing with [`SubscribeOptions::default`].
    pub fn new(backend: Arc<dyn Backend>) -> Self {
        Self {
            backend,
            defaults: SubscribeOptions::default(),
            max_retry: messaging_model::DEFAULT_MAX_RETRY,
            subscriptions: Mutex::new(Vec::new()),
        }
    }

    /// A service over a new [`InMemoryBackend`]: the embedded default.
    pub fn in_memory() -> Self {
        Self::new(Arc::new(InMemoryBackend::new()))
    }

    /// Sets the options [`subscribe`](Self::subscribe) uses (group, concurrency, retry policy…).
    pub fn with_subscribe_defaults(mut self, defaults: SubscribeOptions) -> Self {
        self.defaults = defaults;
        self
    }

    /// Sets `max_retry` of the messages this service publishes.
    pub fn with_max_retry(mut self, max_retry: u32) -> Result<Self, MessagingError> {
        messaging_model::validate_max_retry(max_retry)?;
        self.max_retry = max_retry;
        Ok(self)
    }

    /// The backend.
    pub fn backend(&self) -> &Arc<dyn Backend> {
        &self.backend
    }

    /// The options [`subscribe`](Self::subscribe) uses.
    pub fn subscribe_defaults(&self) -> &SubscribeOptions {
        &self.defaults
    }

    /// A new message for `topic`, checked, with this service's `max_retry` and a
    /// `traceparent` (continuing the trace of the handler it is built in, if any).
    pub fn message(
        &self,
        topic: &str,
        payload: serde_json::Value,
    ) -> Result<Message, MessagingError> {
        self.message_sized(topic, payload)
            .map(|(message, _)| message)
    }

    /// [`message`](Self::message) with the payload's encoded size.
    fn message_sized(
        &self,
        topic: &str,
        payload: serde_json::Value,
    ) -> Result<(Message, usize), MessagingError> {
        self.message_in(Topic::new(topic)?, payload)
    }

    /// [`message_sized`](Self::message_sized) for a topic already checked.
    fn message_in(
        &self,
        topic: Topic,
        payload: serde_json::Value,
    ) -> Result<(Message, usize), MessagingError> {
        let (message, size) = Message::for_topic_sized(topic, payload)?;
        Ok((
            message
                .with_max_retry(self.max_retry)?
                .with_metadata(TRACEPARENT_KEY, TraceContext::for_publish().to_string()),
            size,
        ))
    }

    /// Publishes a payload and returns the message id.
    pub async fn publish(
        &self,
        topic: &str,
        payload: serde_json::Value,
    ) -> Result<Uuid, MessagingError> {
        let message = self.message(topic, payload)?;
        self.send(&message).await
    }

    /// Publishes a message built by the caller (metadata, `max_retry`), stamping a
    /// `traceparent` when it has none.
    pub async fn publish_message(&self, message: &Message) -> Result<Uuid, MessagingError> {
        check_caller_message(message)?;
        self.send(&with_trace_context(message)).await
    }

    /// Publishes several payloads to one topic in one call; nothing is published
    /// if any payload is invalid or the batch is over
    /// [`MAX_BATCH_MESSAGES`](messaging_model::MAX_BATCH_MESSAGES) messages or
    /// [`MAX_BATCH_BYTES`](messaging_model::MAX_BATCH_BYTES) of payload
    /// (`ValidationError::BatchTooLarge`).
    pub async fn publish_batch(
        &self,
        topic: &str,
        payloads: Vec<serde_json::Value>,
    ) -> Result<Vec<Uuid>, MessagingError> {
        messaging_model::validate_batch(payloads.len(), 0)?;
        let topic = Topic::new(topic)?;
        let mut bytes = 0usize;
        let mut messages = Vec::with_capacity(payloads.len());
        for payload in payloads {
            let (message, size) = self.message_in(topic.clone(), payload)?;
            bytes += size;
            messages.push(message);
        }
        messaging_model::validate_batch(messages.len(), bytes)?;
        self.send_batch(&messages).await
    }

    /// Publishes messages built by the caller, in order, in one call; nothing is
    /// published if any message is invalid or the batch is over the limits of
    /// [`publish_batch`](Self::publish_batch). Publishing the same messages again
    /// after a transient error keeps their ids, so consumers can deduplicate
    /// whatever the failed call had written.
    pub async fn publish_messages(
        &self,
        messages: &[Message],
    ) -> Result<Vec<Uuid>, MessagingError> {
        messaging_model::validate_batch(messages.len(), 0)?;
        let mut bytes = 0usize;
        for message in messages {
            bytes += check_caller_message(message)?;
        }
        messaging_model::validate_batch(messages.len(), bytes)?;
        if messages
            .iter()
            .all(|message| message.metadata.contains_key(TRACEPARENT_KEY))
        {
            return self.send_batch(messages).await;
        }
        let stamped: Vec<Message> = messages
            .iter()
            .map(|message| with_trace_context(message).into_owned())
            .collect();
        self.send_batch(&stamped).await
    }

    /// Publishes a payload that must be started within `ttl`: a delivery that
    /// finds its [`expires_at`](Message::expires_at) (now + `ttl`) passed is
    /// not handled but dead-lettered with the error `expired`, or dropped (see
    /// [`SubscribeOptions::on_expired`]). `ttl` is at most
    /// [`MAX_DELAY`](messaging_model::MAX_DELAY). For a delayed message with an
    /// expiry, build it with [`Message::with_expires_at`] and use
    /// [`publish_message_at`](Self::publish_message_at).
    ///
    /// ```
    /// use std::time::Duration;
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let service = messaging_core::MessagingService::in_memory();
    /// // A one-time password is useless after five minutes.
    /// service
    ///     .publish_expiring("otp.send", serde_json::json!({"code": "1234"}), Duration::from_secs(300))
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub async fn publish_expiring(
        &self,
        topic: &str,
        payload: serde_json::Value,
        ttl: Duration,
    ) -> Result<Uuid, MessagingError> {
        messaging_model::validate_delay(ttl)?;
        let expires_at =
            Utc::now() + chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::MAX);
        let message = self.message(topic, payload)?.with_expires_at(expires_at);
        self.send(&message).await
    }

    /// Publishes a payload to be delivered after `delay`, never earlier. The
    /// message waits in the backend, so it survives a restart of this service.
    pub async fn publish_delayed(
        &self,
        topic: &str,
        payload: serde_json::Value,
        delay: Duration,
    ) -> Result<Uuid, MessagingError> {
        messaging_model::validate_delay(delay)?;
        // Within MAX_DELAY both the conversion and the addition are in range.
        let at = Utc::now() + chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::MAX);
        self.publish_at(topic, payload, at).await
    }

    /// Publishes a payload to be delivered at `at`, never earlier.
    pub async fn publish_at(
        &self,
        topic: &str,
        payload: serde_json::Value,
        at: DateTime<Utc>,
    ) -> Result<Uuid, MessagingError> {
        let message = self.message(topic, payload)?;
        self.send_at(&message, at).await
    }

    /// Schedules a message built by the caller for `at`, stamping a `traceparent`
    /// when it has none.
    pub async fn publish_message_at(
        &self,
        message: &Message,
        at: DateTime<Utc>,
    ) -> Result<Uuid, MessagingError> {
        check_caller_message(message)?;
        self.send_at(&with_trace_context(message), at).await
    }

    /// Hands a checked, stamped message to the backend.
    async fn send(&self, message: &Message) -> Result<Uuid, MessagingError> {
        let span = info_span!("publish", message_id = %message.id, topic = %message.topic);
        self.backend.publish(message).instrument(span).await?;
        metrics::counter!("messaging_published_total", "topic" => message.topic.to_string())
            .increment(1);
        Ok(message.id)
    }

    /// Hands checked, stamped messages to the backend in one call.
    async fn send_batch(&self, messages: &[Message]) -> Result<Vec<Uuid>, MessagingError> {
        let span = info_span!("publish_batch", count = messages.len());
        self.backend
            .publish_batch(messages)
            .instrument(span)
            .await?;
        for message in messages {
            metrics::counter!("messaging_published_total", "topic" => message.topic.to_string())
                .increment(1);
        }
        Ok(messages.iter().map(|message| message.id).collect())
    }

    /// Hands a checked, stamped message to the backend's delay queue.
    async fn send_at(&self, message: &Message, at: DateTime<Utc>) -> Result<Uuid, MessagingError> {
        if let Ok(ahead) = (at - Utc::now()).to_std() {
            messaging_model::validate_delay(ahead)?;
        }
        let span = info_span!("publish_at", message_id = %message.id, topic = %message.topic, %at);
        self.backend.schedule(message, at).instrument(span).await?;
        metrics::counter!("messaging_scheduled_total", "topic" => message.topic.to_string())
            .increment(1);
        Ok(message.id)
    }

    /// Runs `handler` for every message of `topic`, with the default options (the
    /// default group).
    pub async fn subscribe(
        &self,
        topic: &str,
        handler: impl MessageHandler,
    ) -> Result<(), MessagingError> {
        self.subscribe_with(topic, self.defaults.clone(), handler)
            .await
    }

    /// Runs `handler` for every message of `topic` under the given options.
    /// One service runs at most one subscription per topic and group.
    /// The handler is any [`MessageHandler`], as for [`subscribe`](Self::subscribe);
    /// wrap an `Arc<dyn MessageHandler>` in [`Shared`](crate::Shared) to give one
    /// handler to several subscriptions.
    pub async fn subscribe_with(
        &self,
        topic: &str,
        options: SubscribeOptions,
        handler: impl MessageHandler,
    ) -> Result<(), MessagingError> {
        let handler: Arc<dyn MessageHandler> = Arc::new(handler);
        let topic = Topic::new(topic)?;
        options.check()?;
        if !options.limits.is_empty() && self.backend.limit_backend().is_none() {
            return Err(MessagingError::Unsupported {
                backend: self.backend.name(),
                operation: "flow limits",
            });
        }
        let mut subscriptions = self.subscriptions.lock().await;
        if subscriptions
            .iter()
            .any(|s| s.topic == topic && s.group == options.group)
        {
            return Err(MessagingError::AlreadySubscribed {
                topic: topic.into_string(),
                group: options.group,
            });
        }
        self.backend
            .ensure_group(&topic, &options.group, options.start_from)
            .await?;
        let backend: Arc<dyn MessageBackend> = self.backend.clone();
        subscriptions.push(Subscription::start(backend, topic, options, handler));
        Ok(())
    }

    /// Stops every subscription of this service to `topic`: no new reads, running
    /// handlers finish (up to the shutdown timeout), the rest is left for redelivery.
    pub async fn unsubscribe(&self, topic: &str) -> Result<(), MessagingError> {
        let closing: Vec<Subscription> = {
            let mut subscriptions = self.subscriptions.lock().await;
            let (closing, keep) = std::mem::take(&mut *subscriptions)
                .into_iter()
                .partition(|s| s.topic == topic);
            *subscriptions = keep;
            closing
        };
        if closing.is_empty() {
            return Err(MessagingError::NotSubscribed {
                topic: topic.to_owned(),
            });
        }
        futures::future::join_all(closing.into_iter().map(Subscription::close)).await;
        Ok(())
    }

    /// Stops every subscription, as [`unsubscribe`](Self::unsubscribe) does.
    pub async fn shutdown(&self) {
        let closing = std::mem::take(&mut *self.subscriptions.lock().await);
        futures::future::join_all(closing.into_iter().map(Subscription::close)).await;
    }

    /// Topics this service is subscribed to, with their groups.
    pub async fn subscriptions(&self) -> Vec<(String, String)> {
        self.subscriptions
            .lock()
            .await
            .iter()
            .map(|s| (s.topic.to_string(), s.group.clone()))
            .collect()
    }

    /// Creates a topic.
    pub async fn create_topic(&self, topic: &str) -> Result<(), MessagingError> {
        let topic = &Topic::new(topic)?;
        Ok(self.backend.create_topic(topic).await?)
    }

    /// Creates `topic` with `partitions` partitions (1 to 1023; see
    /// [`Partitioned`](crate::Partitioned), which the backend must be wrapped
    /// in). Creating it again with the same count is fine; another count is
    /// [`BackendError::PartitionsConflict`](crate::BackendError::PartitionsConflict).
    ///
    /// ```
    /// use std::sync::Arc;
    /// use messaging_core::{InMemoryBackend, MessagingService, Partitioned};
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let service = MessagingService::new(Arc::new(Partitioned::new(InMemoryBackend::new())));
    /// service.create_partitioned_topic("orders.placed", 6).await?;
    /// assert_eq!(service.backend().partitions(&"orders.placed".parse()?).await?, 6);
    /// assert!(service.create_partitioned_topic("orders.placed", 3).await.is_err());
    /// # Ok(()) }
    /// ```
    pub async fn create_partitioned_topic(
        &self,
        topic: &str,
        partitions: u16,
    ) -> Result<(), MessagingError> {
        let topic = &Topic::new(topic)?;
        Ok(self
            .backend
            .create_partitioned_topic(topic, partitions)
            .await?)
    }

    /// Creates `topic` as a priority topic (see [`crate::priority`]): three
    /// lanes, high taken first. The backend must be
    /// [`Partitioned`](crate::Partitioned); another backend answers
    /// [`BackendError::InvalidPartitions`](crate::BackendError::InvalidPartitions).
    /// A topic that exists already as a plain or partitioned topic is
    /// [`BackendError::PartitionsConflict`](crate::BackendError::PartitionsConflict).
    pub async fn create_priority_topic(&self, topic: &str) -> Result<(), MessagingError> {
        let topic = &Topic::new(topic)?;
        Ok(self.backend.create_priority_topic(topic).await?)
    }

    /// Deletes a topic with everything in it; returns whether it existed.
    pub async fn delete_topic(&self, topic: &str) -> Result<bool, MessagingError> {
        let topic = &Topic::new(topic)?;
        Ok(self.backend.delete_topic(topic).await?)
    }

    /// Every topic, sorted.
    pub async fn list_topics(&self) -> Result<Vec<Topic>, MessagingError> {
        Ok(self.backend.list_topics().await?)
    }

    /// Checks the backend answers; an error when it does not.
    pub async fn health(&self) -> Result<HealthReport, MessagingError> {
        let backend = self.backend.health().await?;
        Ok(HealthReport {
            backend: self.backend.name().to_owned(),
            subscriptions: self.subscriptions.lock().await.len(),
            warnings: backend.warnings,
        })
    }

    /// Figures of one topic.
    pub async fn stats(&self, topic: &str) -> Result<TopicStats, MessagingError> {
        let topic = &Topic::new(topic)?;
        Ok(self.backend.stats(topic).await?)
    }

    /// Up to `limit` dead letters of a topic, oldest first.
    pub async fn dead_letters(
        &self,
        topic: &str,
        limit: usize,
    ) -> Result<Vec<DeadLetter>, MessagingError> {
        let topic = &Topic::new(topic)?;
        Ok(self.backend.dead_letters(topic, limit).await?)
    }

    /// Up to `limit` dead letters of a topic after the one whose id is `after`
    /// (from the first for `None`): a page of a listing, read without
    /// touching those before it (see [`BackendAdmin::dead_letters_after`]).
    ///
    /// [`BackendAdmin::dead_letters_after`]: crate::BackendAdmin::dead_letters_after
    pub async fn dead_letters_after(
        &self,
        topic: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<DeadLetter>, MessagingError> {
        let topic = &Topic::new(topic)?;
        Ok(self.backend.dead_letters_after(topic, after, limit).await?)
    }

    /// The dead letter of `topic` whose id is `id`, or `None` when it holds
    /// none under that id (looked up directly: see
    /// [`BackendAdmin::find_dead_letter`](crate::BackendAdmin::find_dead_letter)).
    pub async fn find_dead_letter(
        &self,
        topic: &str,
        id: &str,
    ) -> Result<Option<DeadLetter>, MessagingError> {
        let topic = &Topic::new(topic)?;
        Ok(self.backend.find_dead_letter(topic, id).await?)
    }

    /// Puts one dead letter back into its topic for the group that gave up on it.
    pub async fn replay_dead_letter(&self, topic: &str, id: &str) -> Result<(), MessagingError> {
        let topic = &Topic::new(topic)?;
        if self.backend.replay_dead_letter(topic, id).await? {
            Ok(())
        } else {
            Err(MessagingError::DeadLetterNotFound {
                topic: topic.to_string(),
                id: id.to_owned(),
            })
        }
    }

    /// Replays every dead letter of a topic; returns how many were replayed.
    pub async fn replay_all_dead_letters(&self, topic: &str) -> Result<u64, MessagingError> {
        let topic = &Topic::new(topic)?;
        let mut replayed = 0;
        loop {
            let batch = self.backend.dead_letters(topic, 500).await?;
            if batch.is_empty() {
                return Ok(replayed);
            }
            for dead in batch {
                if self.backend.replay_dead_letter(topic, &dead.id).await? {
                    replayed += 1;
                }
            }
        }
    }

    /// Pauses `topic` for consumer `group` (`None`: every group of the topic,
    /// present and future), in the backend, so every process over it sees it:
    /// within [`SubscribeOptions::PAUSE_CHECK_INTERVAL`](crate::SubscribeOptions::PAUSE_CHECK_INTERVAL)
    /// (plus one read in flight) the group's subscriptions take nothing new and
    /// reclaim nothing. Handlers already running finish and settle as usual;
    /// messages keep arriving and wait in the topic (nothing is lost), shown
    /// as the group's lag. Returns whether anything changed (`false`: it was
    /// paused already).
    ///
    /// Needs a backend with a [`PauseBackend`](crate::PauseBackend) (the
    /// in-memory and Redis backends, partitioned or not); others answer
    /// [`MessagingError::Unsupported`].
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let service = messaging_core::MessagingService::in_memory();
    /// assert!(service.pause("emails.send", Some("mailer")).await?);
    /// assert!(!service.pause("emails.send", Some("mailer")).await?, "already paused");
    /// assert!(service.pause_state("emails.send").await?.is_paused("mailer"));
    /// assert!(service.resume("emails.send", Some("mailer")).await?);
    /// assert!(!service.pause_state("emails.send").await?.is_paused("mailer"));
    ///
    /// // The whole topic, for every group:
    /// service.pause("emails.send", None).await?;
    /// assert!(service.pause_state("emails.send").await?.is_paused("anyone"));
    /// service.resume("emails.send", None).await?;
    /// # Ok(()) }
    /// ```
    pub async fn pause(&self, topic: &str, group: Option<&str>) -> Result<bool, MessagingError> {
        self.set_paused(topic, group, true).await
    }

    /// Resumes what [`pause`](Self::pause) paused: `group`'s own pause (a
    /// pause of the whole topic still holds it), or with `None` every pause of
    /// the topic. Subscriptions take messages again within
    /// [`SubscribeOptions::PAUSE_CHECK_INTERVAL`](crate::SubscribeOptions::PAUSE_CHECK_INTERVAL),
    /// starting with everything that waited. Returns whether anything changed.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let service = messaging_core::MessagingService::in_memory();
    /// service.pause("emails.send", None).await?;
    /// assert!(!service.resume("emails.send", Some("mailer")).await?, "only the topic was paused");
    /// assert!(service.pause_state("emails.send").await?.is_paused("mailer"));
    /// assert!(service.resume("emails.send", None).await?);
    /// assert!(service.pause_state("emails.send").await?.is_empty());
    /// # Ok(()) }
    /// ```
    pub async fn resume(&self, topic: &str, group: Option<&str>) -> Result<bool, MessagingError> {
        self.set_paused(topic, group, false).await
    }

    /// What is paused on `topic` (see [`pause`](Self::pause)).
    pub async fn pause_state(&self, topic: &str) -> Result<crate::PauseState, MessagingError> {
        let topic = &Topic::new(topic)?;
        let pause = self.pause_backend("pause")?;
        Ok(pause.pause_state(topic).await?)
    }

    async fn set_paused(
        &self,
        topic: &str,
        group: Option<&str>,
        paused: bool,
    ) -> Result<bool, MessagingError> {
        let topic = &Topic::new(topic)?;
        if group.is_some_and(str::is_empty) {
            return Err(MessagingError::InvalidOption(
                "group and consumer names must not be empty",
            ));
        }
        let pause = self.pause_backend(if paused { "pause" } else { "resume" })?;
        let changed = pause.set_paused(topic, group, paused).await?;
        if changed {
            tracing::info!(%topic, group = group.unwrap_or("*"), paused, "pause state changed");
        }
        Ok(changed)
    }

    fn pause_backend(
        &self,
        operation: &'static str,
    ) -> Result<&dyn crate::PauseBackend, MessagingError> {
        self.backend
            .pause_backend()
            .ok_or(MessagingError::Unsupported {
                backend: self.backend.name(),
                operation,
            })
    }

    /// Cancels a message that no consumer has received yet: every copy of
    /// message `id` waiting in `topic` (scheduled, waiting for a retry, or in
    /// the stream unread by every consumer group) is removed and will never be
    /// delivered. Returns `true` when something was removed, `false` when no
    /// waiting copy was found: the message was already received (it is being
    /// handled, or was handled, dead-lettered or cancelled before) or is
    /// unknown. A delivered message is not cancellable.
    ///
    /// Needs a backend with a [`CancelBackend`](crate::CancelBackend) (the
    /// in-memory and Redis backends); others answer
    /// [`MessagingError::Unsupported`].
    ///
    /// ```
    /// use std::time::Duration;
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let service = messaging_core::MessagingService::in_memory();
    /// let id = service
    ///     .publish_delayed("reminders.send", serde_json::json!({"user": 7}), Duration::from_secs(3600))
    ///     .await?;
    /// assert!(service.cancel("reminders.send", id).await?);
    /// assert!(!service.cancel("reminders.send", id).await?, "nothing left to cancel");
    /// # Ok(()) }
    /// ```
    pub async fn cancel(&self, topic: &str, id: Uuid) -> Result<bool, MessagingError> {
        let topic = &Topic::new(topic)?;
        let Some(cancel) = self.backend.cancel_backend() else {
            return Err(MessagingError::Unsupported {
                backend: self.backend.name(),
                operation: "cancel",
            });
        };
        let span = info_span!("cancel", message_id = %id, %topic);
        let cancelled = cancel.cancel(topic, id).instrument(span).await?;
        if cancelled {
            metrics::counter!("messaging_cancelled_total", "topic" => topic.to_string())
                .increment(1);
        }
        Ok(cancelled)
    }

    /// Publishes `payload` unless a message under `key` is held (see
    /// [`unique`](crate::unique) for when it is): the key is claimed and the
    /// message published in one atomic step of the backend, so any number of
    /// concurrent publishers of one key publish one message.
    ///
    /// ```
    /// use std::time::Duration;
    /// use messaging_core::MessagingService;
    /// use messaging_core::unique::{UniqueOptions, UniquePublish};
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), messaging_core::MessagingError> {
    /// let service = MessagingService::in_memory();
    /// let options = UniqueOptions::new(Duration::from_secs(3600));
    /// let first = service.publish_unique("report.build", serde_json::json!({"day": "2026-12-01"}), "report:2026-12-01", options).await?;
    /// let again = service.publish_unique("report.build", serde_json::json!({"day": "2026-12-01"}), "report:2026-12-01", options).await?;
    /// assert!(matches!(first, UniquePublish::Published(_)));
    /// assert_eq!(again, UniquePublish::Duplicate(first.id()));
    /// # Ok(()) }
    /// ```
    pub async fn publish_unique(
        &self,
        topic: &str,
        payload: serde_json::Value,
        key: &str,
        options: crate::unique::UniqueOptions,
    ) -> Result<crate::unique::UniquePublish, MessagingError> {
        self.unique(topic, payload, key, options, None).await
    }

    /// [`publish_unique`](Self::publish_unique), delivered after `delay`; the
    /// key is held while the message waits.
    pub async fn publish_unique_delayed(
        &self,
        topic: &str,
        payload: serde_json::Value,
        key: &str,
        delay: Duration,
        options: crate::unique::UniqueOptions,
    ) -> Result<crate::unique::UniquePublish, MessagingError> {
        messaging_model::validate_delay(delay)?;
        let deliver_at =
            Utc::now() + chrono::TimeDelta::from_std(delay).unwrap_or(chrono::TimeDelta::MAX);
        self.unique(topic, payload, key, options, Some(deliver_at))
            .await
    }

    async fn unique(
        &self,
        topic: &str,
        payload: serde_json::Value,
        key: &str,
        options: crate::unique::UniqueOptions,
        deliver_at: Option<DateTime<Utc>>,
    ) -> Result<crate::unique::UniquePublish, MessagingError> {
        use crate::unique::{
            UNIQUE_KEY, UNIQUE_WHILE_DEAD_KEY, UNIQUE_WINDOW_MS_KEY, UniquePublish,
        };
        crate::unique::validate_unique_key(key).map_err(|_| {
            MessagingError::Validation(ValidationError::InvalidMetadata {
                key: UNIQUE_KEY.to_owned(),
                reason: "1 to 256 bytes, no whitespace or control characters",
            })
        })?;
        let Some(backend) = self.backend.unique_backend() else {
            return Err(MessagingError::Unsupported {
                backend: self.backend.name(),
                operation: "publish_unique",
            });
        };
        let mut message = self
            .message(topic, payload)?
            .with_metadata(UNIQUE_KEY, key)
            .with_metadata(
                UNIQUE_WINDOW_MS_KEY,
                options
                    .window
                    .as_millis()
                    .min(u128::from(u64::MAX))
                    .to_string(),
            );
        if options.while_dead_lettered {
            message = message.with_metadata(UNIQUE_WHILE_DEAD_KEY, "1");
        }
        let message = with_trace_context(&message).into_owned();
        let span = info_span!("publish_unique", message_id = %message.id, %topic, key);
        match backend
            .publish_unique(&message, deliver_at, key, options.hold)
            .instrument(span)
            .await?
        {
            Some(holder) => Ok(UniquePublish::Duplicate(holder)),
            None => {
                metrics::counter!("messaging_published_total", "topic" => message.topic.to_string())
                    .increment(1);
                Ok(UniquePublish::Published(message.id))
            }
        }
    }

    /// The id of the message holding unique `key` of `topic`, if it is held.
    pub async fn unique_holder(
        &self,
        topic: &str,
        key: &str,
    ) -> Result<Option<Uuid>, MessagingError> {
        let topic = &Topic::new(topic)?;
        let Some(backend) = self.backend.unique_backend() else {
            return Err(MessagingError::Unsupported {
                backend: self.backend.name(),
                operation: "unique_holder",
            });
        };
        Ok(backend.unique_holder(topic, key).await?)
    }

    /// Removes every dead letter of a topic; returns how many there were.
    pub async fn purge_dead_letters(&self, topic: &str) -> Result<u64, MessagingError> {
        let topic = &Topic::new(topic)?;
        Ok(self.backend.purge_dead_letters(topic).await?)
    }
}

/// The message with a `traceparent`, added only when it has none.
fn with_trace_context(message: &Message) -> std::borrow::Cow<'_, Message> {
    if message.metadata.contains_key(TRACEPARENT_KEY) {
        std::borrow::Cow::Borrowed(message)
    } else {
        let mut stamped = message.clone();
        stamped.metadata.insert(
            TRACEPARENT_KEY.to_owned(),
            TraceContext::for_publish().to_string(),
        );
        std::borrow::Cow::Owned(stamped)
    }
}

/// Checks a message built by the caller, once, on the publish path (the backend
/// does not check it again): the model's rules, and no metadata key
/// the runtime reserves for itself ([`RESERVED_METADATA_KEYS`]). A forged
/// `x-target-group` would otherwise hide the message from every other group.
/// Returns the payload's encoded size.
fn check_caller_message(message: &Message) -> Result<usize, MessagingError> {
    let size = message.validate_sized()?;
    if let Some(key) = RESERVED_METADATA_KEYS
        .iter()
        .find(|key| message.metadata.contains_key(**key))
    {
        return Err(ValidationError::ReservedMetadataKey {
            key: (*key).to_owned(),
        }
        .into());
    }
    if let Some(value) = message.metadata.get(crate::priority::PRIORITY_KEY) {
        value.parse::<crate::priority::Priority>().map_err(|_| {
            ValidationError::InvalidMetadata {
                key: crate::priority::PRIORITY_KEY.to_owned(),
                reason: "must be high, normal or low",
            }
        })?;
    }
    if let Some(value) = message.metadata.get(crate::HANDLER_TIMEOUT_KEY) {
        crate::subscription::parse_handler_timeout(value).map_err(|reason| {
            ValidationError::InvalidMetadata {
                key: crate::HANDLER_TIMEOUT_KEY.to_owned(),
                reason,
            }
        })?;
    }
    Ok(size)
}
