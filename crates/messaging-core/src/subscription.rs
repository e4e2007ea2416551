//! The subscription runtime: reads a topic as one consumer of a group, runs the
//! handler with bounded concurrency, and settles every delivery by its outcome.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use futures::FutureExt;
use messaging_model::{Message, MessageStatus, Topic};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, debug, error, info_span, warn};

use crate::backend::{
    ConsumerId, Delivery, MessageBackend, RETRY_AT_KEY, RETRY_DELAY_MS_KEY, ReadFrom, ReadOptions,
    Receipt, Settlement, TARGET_GROUP_KEY,
};
use crate::limit::{
    FlowLimit, LIMIT_DEFERRALS_KEY, LIMIT_RESERVED_KEY, LimitBucket, LimitKind, Rate,
    concurrency_backoff,
};
use crate::trace_context::{TRACEPARENT_KEY, TraceContext};
use crate::{HandlerError, MessageHandler, RetryPolicy, StartFrom};

/// How a subscription consumes its topic.
///
/// ```
/// use std::time::Duration;
/// use messaging_core::{RetryPolicy, SubscribeOptions};
///
/// let options = SubscribeOptions::new("billing")
///     .with_concurrency(16)
///     .with_visibility_timeout(Duration::from_secs(60))
///     .with_retry(RetryPolicy::exponential(Duration::from_millis(500), Duration::from_secs(60)));
/// assert_eq!(options.group, "billing");
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct SubscribeOptions {
    /// The consumer group: services with different groups each get every message,
    /// replicas sharing a group share the work.
    pub group: String,
    /// This consumer's name within the group. Keep it stable across restarts of
    /// one replica so it finds its own unfinished deliveries first.
    pub consumer: String,
    /// Handlers running at once.
    pub concurrency: usize,
    /// Most deliveries fetched in one read.
    pub batch_size: usize,
    /// How long one read waits for new messages.
    pub block_timeout: Duration,
    /// A delivery pending for longer than this (its consumer presumed dead) is
    /// reclaimed by another consumer. Running handlers extend their lease, so a
    /// slow but healthy handler keeps its message.
    pub visibility_timeout: Duration,
    /// Backoff between attempts of a failing message.
    pub retry: RetryPolicy,
    /// Deliveries of one entry (crashes included) after which it is dead-lettered
    /// without running the handler again: the guard against a message that kills
    /// its consumer every time.
    pub max_deliveries: u32,
    /// Where a new group starts.
    pub start_from: StartFrom,
    /// How long closing waits for running handlers before leaving their messages
    /// for redelivery.
    pub shutdown_timeout: Duration,
    /// The longest a failed message waits before its next attempt: a handler's
    /// [`HandlerError::retry_after`] (a provider's `Retry-After`, say) and the
    /// retry policy's backoff are both capped at it.
    pub max_retry_delay: Duration,
    /// The subscriber's retry budget: when set, a failed message is retried up
    /// to this many times whatever `max_retry` its publisher gave it (at most
    /// [`messaging_model::MAX_RETRY_LIMIT`]). `None` (the default) keeps the
    /// message's own `max_retry`. A consumer whose retry schedule must ride out
    /// an outage (the notification worker) sets it with its schedule.
    pub max_retries: Option<u32>,
    /// How long one attempt may run: at the deadline the handler's
    /// [`cancellation`](crate::cancellation) token is cancelled, its future is
    /// dropped, and the attempt counts as a retryable failure with the error
    /// `timed out` (retried with backoff, then dead-lettered, as any failure).
    /// A message's [`HANDLER_TIMEOUT_KEY`] metadata overrides it for that
    /// message. `None` (the default): no limit, the lease is extended for as
    /// long as the handler runs.
    pub handler_timeout: Option<Duration>,
    /// What happens to a message whose [`expires_at`](messaging_model::Message::expires_at)
    /// has passed when it is delivered (it is never run): dead-lettered with
    /// the error `expired` (the default) or dropped. Either way
    /// `messaging_expired_total` counts it.
    pub on_expired: OnExpired,
    /// Flow limits (rate and concurrency per key, see [`crate::limit`]),
    /// checked in order before each message's handler runs. Empty by default.
    pub limits: Vec<FlowLimit>,
}

/// What the runtime does with a delivery whose message has expired
/// ([`Message::expires_at`](messaging_model::Message::expires_at) has passed
/// before any attempt started): the handler is not run either way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum OnExpired {
    /// Into the dead-letter queue with the error `expired`, where it can be
    /// inspected, replayed (which clears the passed expiry) or purged.
    #[default]
    DeadLetter,
    /// Acknowledged and gone. Chosen by name: nothing but the metric and a
    /// debug log keeps a trace of it.
    Drop,
}

/// Metadata key of a message's own handler timeout, in milliseconds (a whole
/// number from 1 to [`SubscribeOptions::MAX_HANDLER_TIMEOUT`] in ms): it
/// replaces the subscription's [`handler_timeout`](SubscribeOptions::handler_timeout)
/// for every attempt of that message.
/// [`MessagingService`](crate::MessagingService) refuses a message whose value
/// is not such a number ([`ValidationError::InvalidMetadata`](messaging_model::ValidationError::InvalidMetadata));
/// a bad value written by another producer is ignored with a warning.
///
/// ```
/// use messaging_core::HANDLER_TIMEOUT_KEY;
/// let message = messaging_model::Message::new("reports.render", serde_json::json!({}))
///     .unwrap()
///     .with_metadata(HANDLER_TIMEOUT_KEY, "120000"); // this one may take 2 minutes
/// assert_eq!(message.metadata["timeout_ms"], "120000");
/// ```
pub const HANDLER_TIMEOUT_KEY: &str = "timeout_ms";

/// The timeout a message's [`HANDLER_TIMEOUT_KEY`] value asks for, or why it
/// is refused.
pub(crate) fn parse_handler_timeout(value: &str) -> Result<Duration, &'static str> {
    let millis: u64 = value
        .parse()
        .map_err(|_| "must be a whole number of milliseconds")?;
    let timeout = Duration::from_millis(millis);
    if millis == 0 || timeout > SubscribeOptions::MAX_HANDLER_TIMEOUT {
        return Err("must be between 1 and 86400000 milliseconds (1 day)");
    }
    Ok(timeout)
}

/// What [`MessagingService::subscribe`](crate::MessagingService::subscribe)
/// uses: [`new`](SubscribeOptions::new)'s settings for group `default`.
impl Default for SubscribeOptions {
    fn default() -> Self {
        Self::new("default")
    }
}

impl SubscribeOptions {
    /// Options for `group` with a fresh consumer name and the defaults: 64
    /// handlers (the runtime reads only what it has room to run, so with 8 each
    /// read fetched at most 8 and the Redis backend ran at half its rate, issue
    /// 12), 30 s visibility timeout, the default retry policy, 10 deliveries at
    /// most.
    pub fn new(group: impl Into<String>) -> Self {
        Self {
            group: group.into(),
            consumer: format!("consumer-{}", uuid::Uuid::now_v7().simple()),
            concurrency: 64,
            batch_size: 64,
            block_timeout: Duration::from_secs(1),
            visibility_timeout: Duration::from_secs(30),
            retry: RetryPolicy::default(),
            max_deliveries: 10,
            start_from: StartFrom::Earliest,
            shutdown_timeout: Duration::from_secs(10),
            max_retry_delay: Self::DEFAULT_MAX_RETRY_DELAY,
            max_retries: None,
            handler_timeout: None,
            on_expired: OnExpired::DeadLetter,
            limits: Vec::new(),
        }
    }

    /// Most handlers one subscription runs at once.
    pub const MAX_CONCURRENCY: usize = 100_000;
    /// Most deliveries fetched in one read.
    pub const MAX_BATCH_SIZE: usize = 10_000;
    /// Longest visibility timeout (7 days).
    pub const MAX_VISIBILITY_TIMEOUT: Duration = Duration::from_secs(7 * 24 * 3600);
    /// Longest wait of one read (5 minutes).
    pub const MAX_BLOCK_TIMEOUT: Duration = Duration::from_secs(300);
    /// Longest shutdown wait (1 day).
    pub const MAX_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(24 * 3600);
    /// Longest handler timeout, of a subscription or a message (1 day).
    pub const MAX_HANDLER_TIMEOUT: Duration = Duration::from_secs(24 * 3600);
    /// How often a running subscription re-reads whether its topic and group
    /// are paused (see [`crate::PauseBackend`]), and so the bound on how long
    /// a pause or a resume takes to be seen: a subscription takes no new
    /// message once this interval and one read in flight have passed since the
    /// pause (a read of new entries never blocks past the next check). While
    /// paused it sleeps on this interval: one small read of the pause state a
    /// second, no busy loop.
    pub const PAUSE_CHECK_INTERVAL: Duration = Duration::from_secs(1);
    /// The longest wait for a rate limit's permit that a message spends in its
    /// handler slot; a longer one is spent in the backend's delay queue (see
    /// [`crate::limit`]).
    pub const LIMIT_HOLD_MAX: Duration = Duration::from_millis(100);
    /// How long a rate permit taken ahead stays usable: one that no message
    /// of the subscription used by then is thrown away, never used later
    /// (see [`LimitBackend::reserve_permits_ahead`](crate::limit::LimitBackend::reserve_permits_ahead)).
    pub const LIMIT_PREFETCH_WINDOW: Duration = Duration::from_millis(50);
    /// How long a subscription keeps a concurrency slot after its message is
    /// done, for its next message of the bucket (see [`crate::limit`]); a
    /// slot not lent by then is freed.
    pub const LIMIT_KEEP_SLOT: Duration = Duration::from_millis(50);
    /// Most concurrency slots of one bucket a subscription keeps (and never
    /// more than a sixteenth of the limit's `max`).
    pub const LIMIT_KEEP_SLOTS_MAX: u32 = 256;
    /// Most rate permits of one bucket a subscription takes ahead at a time
    /// (and never more than a sixteenth of the limit's burst).
    pub const LIMIT_PREFETCH_MAX: u32 = 1024;
    /// Most flow limits of one subscription.
    pub const MAX_LIMITS: usize = 16;
    /// The default of [`max_retry_delay`](Self::max_retry_delay): 1 day.
    pub const DEFAULT_MAX_RETRY_DELAY: Duration = Duration::from_secs(24 * 3600);

    /// Sets the consumer group.
    pub fn with_group(mut self, group: impl Into<String>) -> Self {
        self.group = group.into();
        self
    }

    /// Sets the consumer name.
    pub fn with_consumer(mut self, consumer: impl Into<String>) -> Self {
        self.consumer = consumer.into();
        self
    }

    /// Sets how many handlers run at once.
    pub fn with_concurrency(mut self, concurrency: usize) -> Self {
        self.concurrency = concurrency;
        self
    }

    /// Sets the most deliveries fetched in one read.
    pub fn with_batch_size(mut self, batch_size: usize) -> Self {
        self.batch_size = batch_size;
        self
    }

    /// Sets how long one read waits.
    pub fn with_block_timeout(mut self, block_timeout: Duration) -> Self {
        self.block_timeout = block_timeout;
        self
    }

    /// Sets the visibility timeout.
    pub fn with_visibility_timeout(mut self, visibility_timeout: Duration) -> Self {
        self.visibility_timeout = visibility_timeout;
        self
    }

    /// Sets the retry policy.
    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// Sets the delivery limit.
    pub fn with_max_deliveries(mut self, max_deliveries: u32) -> Self {
        self.max_deliveries = max_deliveries;
        self
    }

    /// Sets where a new group starts.
    pub fn with_start_from(mut self, start_from: StartFrom) -> Self {
        self.start_from = start_from;
        self
    }

    /// Sets how long closing waits for running handlers.
    pub fn with_shutdown_timeout(mut self, shutdown_timeout: Duration) -> Self {
        self.shutdown_timeout = shutdown_timeout;
        self
    }

    /// Sets the longest wait before a failed message's next attempt (at most
    /// [`messaging_model::MAX_DELAY`]).
    pub fn with_max_retry_delay(mut self, max_retry_delay: Duration) -> Self {
        self.max_retry_delay = max_retry_delay;
        self
    }

    /// Sets the subscriber's retry budget ([`max_retries`](Self::max_retries)),
    /// which replaces each message's `max_retry`.
    pub fn with_max_retries(mut self, max_retries: u32) -> Self {
        self.max_retries = Some(max_retries);
        self
    }

    /// Sets how long one attempt may run ([`handler_timeout`](Self::handler_timeout),
    /// from 1 ms to [`MAX_HANDLER_TIMEOUT`](Self::MAX_HANDLER_TIMEOUT)).
    ///
    /// ```
    /// use std::time::Duration;
    /// use messaging_core::SubscribeOptions;
    /// let options = SubscribeOptions::new("thumbnails").with_handler_timeout(Duration::from_secs(20));
    /// assert_eq!(options.handler_timeout, Some(Duration::from_secs(20)));
    /// ```
    pub fn with_handler_timeout(mut self, handler_timeout: Duration) -> Self {
        self.handler_timeout = Some(handler_timeout);
        self
    }

    /// Sets what happens to expired messages ([`on_expired`](Self::on_expired)).
    pub fn with_on_expired(mut self, on_expired: OnExpired) -> Self {
        self.on_expired = on_expired;
        self
    }

    /// Adds a flow limit ([`limits`](Self::limits)), checked after the ones
    /// added before it.
    pub fn with_limit(mut self, limit: FlowLimit) -> Self {
        self.limits.push(limit);
        self
    }

    pub(crate) fn check(&self) -> Result<(), crate::MessagingError> {
        use crate::MessagingError::InvalidOption;
        if self.concurrency == 0 || self.concurrency > Self::MAX_CONCURRENCY {
            return Err(InvalidOption("concurrency must be between 1 and 100,000"));
        }
        if self.batch_size == 0 || self.batch_size > Self::MAX_BATCH_SIZE {
            return Err(InvalidOption("batch_size must be between 1 and 10,000"));
        }
        if self.visibility_timeout < Duration::from_millis(10)
            || self.visibility_timeout > Self::MAX_VISIBILITY_TIMEOUT
        {
            return Err(InvalidOption(
                "visibility_timeout must be between 10 ms and 7 days",
            ));
        }
        if self.block_timeout > Self::MAX_BLOCK_TIMEOUT {
            return Err(InvalidOption("block_timeout must be at most 5 minutes"));
        }
        if self.shutdown_timeout > Self::MAX_SHUTDOWN_TIMEOUT {
            return Err(InvalidOption("shutdown_timeout must be at most 1 day"));
        }
        if self.max_retry_delay > messaging_model::MAX_DELAY {
            return Err(InvalidOption("max_retry_delay must be at most 366 days"));
        }
        if self
            .max_retries
            .is_some_and(|max| max > messaging_model::MAX_RETRY_LIMIT)
        {
            return Err(InvalidOption("max_retries must be at most 100"));
        }
        if self.handler_timeout.is_some_and(|timeout| {
            timeout < Duration::from_millis(1) || timeout > Self::MAX_HANDLER_TIMEOUT
        }) {
            return Err(InvalidOption(
                "handler_timeout must be between 1 ms and 1 day",
            ));
        }
        if self.limits.len() > Self::MAX_LIMITS {
            return Err(InvalidOption("at most 16 flow limits per subscription"));
        }
        let mut names: Vec<&str> = self.limits.iter().map(FlowLimit::name).collect();
        names.sort_unstable();
        if names.windows(2).any(|pair| pair[0] == pair[1]) {
            return Err(InvalidOption(
                "two flow limits of one subscription have the same name",
            ));
        }
        if self.max_deliveries == 0 {
            return Err(InvalidOption("max_deliveries must be at least 1"));
        }
        if self.group.is_empty() || self.consumer.is_empty() {
            return Err(InvalidOption("group and consumer names must not be empty"));
        }
        Ok(())
    }
}

/// A running subscription: its task and the switch that stops it.
pub(crate) struct Subscription {
    pub(crate) topic: Topic,
    pub(crate) group: String,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Subscription {
    pub(crate) fn start(
        backend: Arc<dyn MessageBackend>,
        topic: Topic,
        options: SubscribeOptions,
        handler: Arc<dyn MessageHandler>,
    ) -> Self {
        let (stop, stopped) = watch::channel(false);
        let group = options.group.clone();
        let slots = Slots {
            backend: backend.clone(),
            queues: Arc::default(),
            pool: Arc::default(),
            lease: options.visibility_timeout,
        };
        let worker = Worker {
            backend,
            consumer: ConsumerId::new(topic.clone(), &options.group, &options.consumer),
            topic: topic.clone(),
            options: Arc::new(options),
            handler,
            closing: CancellationToken::new(),
            permits: Arc::default(),
            stock: Arc::default(),
            slots,
        };
        let task = tokio::spawn(worker.run(stopped));
        Self {
            topic,
            group,
            stop,
            task,
        }
    }

    /// Stops reading, waits for running handlers up to the shutdown timeout, and
    /// leaves whatever did not finish pending for redelivery.
    pub(crate) async fn close(self) {
        let _ = self.stop.send(true);
        if let Err(join_error) = self.task.await {
            error!(topic = %self.topic, group = %self.group, %join_error, "subscription task failed");
        }
    }
}

#[derive(Clone)]
struct Worker {
    backend: Arc<dyn MessageBackend>,
    /// This worker as a consumer: the topic, the group and the consumer's name.
    consumer: ConsumerId,
    topic: Topic,
    /// Shared, not copied for each message.
    options: Arc<SubscribeOptions>,
    handler: Arc<dyn MessageHandler>,
    /// Cancelled when the subscription starts closing; every running handler's
    /// [`crate::cancellation`] token is a child of it.
    closing: CancellationToken,
    /// Messages waiting for a rate permit, by bucket.
    permits: Arc<Coalescer<PermitQueue>>,
    /// Rate permits taken ahead, handed out without a backend call.
    stock: Arc<PermitStock>,
    /// Concurrency slots being taken, renewed and freed, by bucket.
    slots: Slots,
}

/// How one attempt of the handler ended.
enum Attempt {
    /// The handler returned (a panic is a retryable error).
    Returned(Result<(), HandlerError>),
    /// The deadline passed first: the handler's future was dropped.
    TimedOut(Duration),
}

/// The error of an attempt cut off at its deadline: its text, `timed out`, is
/// the dead letter's error once the retries are used up.
#[derive(Debug, thiserror::Error)]
#[error("timed out")]
struct TimedOut;

impl Worker {
    async fn run(self, mut stopped: watch::Receiver<bool>) {
        let options = &self.options;
        let semaphore = Arc::new(Semaphore::new(options.concurrency));
        let mut running = JoinSet::new();
        let reclaim_every = (options.visibility_timeout / 2).max(Duration::from_millis(5));
        let mut next_reclaim = tokio::time::Instant::now();
        let mut from = ReadFrom::OwnPending { after: None };
        let mut failures: u32 = 0;
        let mut group_ready = false;
        let pause_backend = self.backend.pause_backend().is_some();
        let mut next_pause_check = tokio::time::Instant::now();
        let mut paused = false;

        loop {
            if *stopped.borrow() {
                break;
            }
            while let Some(finished) = running.try_join_next() {
                if let Err(join_error) = finished {
                    error!(topic = %self.topic, %join_error, "handler task failed");
                }
            }
            // Wait for room before fetching, so nothing is fetched that cannot run.
            let first = tokio::select! {
                permit = semaphore.clone().acquire_owned() => match permit {
                    Ok(permit) => permit,
                    Err(_) => break,
                },
                _ = stopped.changed() => break,
            };
            let room = (1 + semaphore.available_permits()).min(options.batch_size);

            // Paused (topic, group): take nothing, neither new entries nor
            // reclaimed or own pending ones, until resumed. Running handlers
            // go on, extend their leases and settle as usual.
            if group_ready && let Some(pause) = self.backend.pause_backend() {
                if tokio::time::Instant::now() >= next_pause_check {
                    match pause.pause_state(&self.topic).await {
                        Ok(state) => {
                            let now_paused = state.is_paused(&options.group);
                            if now_paused != paused {
                                debug!(topic = %self.topic, group = %options.group, paused = now_paused, "pause state changed");
                                metrics::gauge!("messaging_subscription_paused", "topic" => self.topic.to_string(), "group" => options.group.clone())
                                    .set(if now_paused { 1.0 } else { 0.0 });
                                if !now_paused {
                                    // Resumed: read before reclaiming. A read in
                                    // flight at the pause (a partitioned topic's
                                    // blocking reads of its other partitions) may
                                    // have left entries delivered to this consumer
                                    // and idle since; the next read hands them
                                    // over, and a reclaim first would deliver
                                    // them twice.
                                    next_reclaim = tokio::time::Instant::now() + reclaim_every;
                                }
                            }
                            paused = now_paused;
                        }
                        Err(backend_error) => {
                            warn!(topic = %self.topic, group = %options.group, error = %backend_error, paused, "could not read the pause state; keeping the last one");
                        }
                    }
                    next_pause_check =
                        tokio::time::Instant::now() + SubscribeOptions::PAUSE_CHECK_INTERVAL;
                }
                if paused {
                    drop(first);
                    tokio::select! {
                        () = tokio::time::sleep_until(next_pause_check) => continue,
                        _ = stopped.changed() => break,
                    }
                }
            }

            let fetched = if !group_ready {
                self.backend
                    .ensure_group(&self.topic, &options.group, options.start_from)
                    .await
                    .map(|()| {
                        group_ready = true;
                        Vec::new()
                    })
            } else if tokio::time::Instant::now() >= next_reclaim {
                next_reclaim = tokio::time::Instant::now() + reclaim_every;
                self.backend
                    .reclaim_idle(&self.consumer, options.visibility_timeout, room)
                    .await
            } else if let ReadFrom::OwnPending { after } = &from {
                let result = self
                    .backend
                    .read(
                        &self.consumer,
                        &ReadOptions::own_pending(after.clone(), room),
                    )
                    .await;
                if let Ok(deliveries) = &result {
                    from = match deliveries.last() {
                        Some(last) => ReadFrom::OwnPending {
                            after: Some(last.receipt.entry_id.clone()),
                        },
                        None => ReadFrom::New,
                    };
                }
                result
            } else {
                let until_reclaim =
                    next_reclaim.saturating_duration_since(tokio::time::Instant::now());
                let mut block = options.block_timeout.min(until_reclaim);
                if pause_backend {
                    // Never block past the next look at the pause state.
                    block = block.min(
                        next_pause_check.saturating_duration_since(tokio::time::Instant::now()),
                    );
                }
                let read = ReadOptions::new_entries(room, block);
                // Biased to the read: deliveries that arrive as the stop signal does are
                // still handled (and drained) rather than left for reclaiming.
                tokio::select! {
                    biased;
                    result = self.backend.read(&self.consumer, &read) => result,
                    _ = stopped.changed() => break,
                }
            };

            let deliveries = match fetched {
                Ok(deliveries) => {
                    failures = 0;
                    deliveries
                }
                Err(backend_error) => {
                    failures = failures.saturating_add(1);
                    let pause =
                        RetryPolicy::exponential(Duration::from_millis(50), Duration::from_secs(5))
                            .delay(failures);
                    warn!(topic = %self.topic, group = %options.group, error = %backend_error, ?pause, "reading failed; retrying");
                    drop(first);
                    tokio::select! {
                        _ = tokio::time::sleep(pause) => continue,
                        _ = stopped.changed() => break,
                    }
                }
            };

            let mut permit = Some(first);
            for delivery in deliveries {
                let permit = match permit.take() {
                    Some(permit) => permit,
                    None => match semaphore.clone().acquire_owned().await {
                        Ok(permit) => permit,
                        Err(_) => break,
                    },
                };
                let worker = self.clone();
                running.spawn(async move {
                    worker.process(delivery).await;
                    drop(permit);
                });
            }
        }

        // Closing: tell running handlers (their cancellation tokens), let them
        // finish up to the deadline; whatever is cut off stays pending in the
        // backend and is redelivered.
        self.closing.cancel();
        let drained = tokio::time::timeout(options.shutdown_timeout, async {
            while running.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            warn!(topic = %self.topic, group = %options.group, left = running.len(), "shutdown deadline passed; unfinished messages will be redelivered");
            running.abort_all();
            while running.join_next().await.is_some() {}
        }
        // Slots kept for the next message are of no use any more.
        self.slots.release_kept();
        // Reads the backend runs on this consumer's behalf end here too.
        self.backend.consumer_stopped(&self.consumer).await;
    }

    async fn process(&self, delivery: Delivery) {
        let Delivery { message, receipt } = delivery;
        let trace = message
            .metadata
            .get(TRACEPARENT_KEY)
            .and_then(|text| TraceContext::parse(text))
            .map_or_else(TraceContext::new_root, |parent| parent.child());
        let span = info_span!(
            "handle",
            message_id = %message.id,
            topic = %self.topic,
            group = %receipt.consumer.group,
            delivery = receipt.delivery_count,
            trace_id = %trace.trace_id_hex(),
        );
        let work = async move {
            if let Some(target) = message.metadata.get(TARGET_GROUP_KEY)
                && *target != receipt.consumer.group
            {
                // A retry or replay meant for another group.
                self.settle("ack", self.backend.ack(&receipt).await, &receipt);
                return;
            }
            if let Some(expires_at) = message.expires_at
                && expires_at <= Utc::now()
            {
                self.expire(&receipt, message).await;
                return;
            }
            if receipt.delivery_count > self.options.max_deliveries {
                let error = format!(
                    "delivered {} times without being settled (its consumers crashed or timed out)",
                    receipt.delivery_count
                );
                self.give_up(&receipt, message, error).await;
                return;
            }
            let mut message = message;
            let slots = if self.options.limits.is_empty() {
                Vec::new()
            } else {
                match self.admit(&receipt, &mut message).await {
                    Some(slots) => slots,
                    None => return,
                }
            };
            let started = std::time::Instant::now();
            let token = self.closing.child_token();
            let timeout = self.timeout_of(&message);
            let attempt = self
                .run_handler(&receipt, message.clone(), timeout, token, &slots)
                .await;
            let _release = SlotRelease {
                slots: self.slots.clone(),
                held: slots,
            };
            let labels = [
                ("topic", self.topic.to_string()),
                ("group", receipt.consumer.group.clone()),
            ];
            metrics::histogram!("messaging_handler_duration_seconds", &labels)
                .record(started.elapsed().as_secs_f64());
            let outcome = match attempt {
                Attempt::Returned(Err(failure)) if self.closing.is_cancelled() => {
                    // Stopped by the shutdown (its token was cancelled): not the
                    // message's fault, so no retry is used up; it stays pending
                    // and is redelivered.
                    debug!(error = %failure, "handler failed while the subscription closes; left pending for redelivery");
                    return;
                }
                Attempt::Returned(outcome) => outcome,
                Attempt::TimedOut(after) => {
                    warn!(?after, "handler timed out; its future was dropped");
                    metrics::counter!("messaging_timed_out_total", &labels).increment(1);
                    Err(HandlerError::retry(TimedOut))
                }
            };
            match outcome {
                Ok(()) => {
                    debug!("handled");
                    metrics::counter!("messaging_handled_total", &labels).increment(1);
                    let acked = self.backend.ack(&receipt).await;
                    let settled = matches!(acked, Ok(Settlement::Settled));
                    self.settle("ack", acked, &receipt);
                    if settled {
                        self.release_unique(&message, false).await;
                    }
                }
                Err(failure) => {
                    metrics::counter!("messaging_failed_total", &labels).increment(1);
                    self.fail(&receipt, message, failure).await
                }
            }
        };
        trace.scope(work.instrument(span)).await
    }

    /// Admits `message` through the subscription's flow limits, in order:
    /// `Some` with the concurrency slots it holds, or `None` when it was put
    /// back in the delay queue (or left pending after a backend error) and
    /// must not run now. Removes the runtime's limit metadata from `message`,
    /// so a retry of it takes new permits.
    async fn admit(&self, receipt: &Receipt, message: &mut Message) -> Option<Vec<HeldSlot>> {
        if self.backend.limit_backend().is_none() {
            // The service refuses limits on such a backend; a backend that
            // stopped answering has no buckets to ask.
            return Some(Vec::new());
        }
        let reserved: Vec<String> = message
            .metadata
            .remove(LIMIT_RESERVED_KEY)
            .map(|names| names.split(',').map(str::to_owned).collect())
            .unwrap_or_default();
        let deferrals: u32 = message
            .metadata
            .remove(LIMIT_DEFERRALS_KEY)
            .and_then(|count| count.parse().ok())
            .unwrap_or(0);
        let mut slots: Vec<HeldSlot> = Vec::new();
        let mut newly_reserved: Vec<&str> = Vec::new();
        // Made when a concurrency limit asks for it.
        let mut holder: Option<String> = None;
        for limit in &self.options.limits {
            let bucket = limit.bucket_of(message);
            match limit.kind() {
                LimitKind::Rate(rate) => {
                    if reserved.iter().any(|name| name == limit.name()) {
                        continue;
                    }
                    let wait = match self.take_permit(&bucket, rate).await {
                        Ok(wait) => wait,
                        Err(backend_error) => {
                            self.leave_pending(slots, &bucket, &backend_error);
                            return None;
                        }
                    };
                    newly_reserved.push(limit.name());
                    if wait.is_zero() {
                        continue;
                    }
                    metrics::counter!("messaging_rate_limited_total", "topic" => self.topic.to_string(), "group" => receipt.consumer.group.clone(), "limit" => limit.name().to_owned())
                        .increment(1);
                    if wait <= SubscribeOptions::LIMIT_HOLD_MAX {
                        tokio::time::sleep(wait).await;
                        continue;
                    }
                    // Hold no slot while waiting in the delay queue. Every
                    // permit taken is due by then, so none is taken again.
                    self.slots.release(slots);
                    let names: Vec<&str> = reserved
                        .iter()
                        .map(String::as_str)
                        .chain(newly_reserved.iter().copied())
                        .collect();
                    debug!(limit = limit.name(), key = %bucket.key, ?wait, "over a rate limit; waiting for its permit in the delay queue");
                    self.defer(receipt, message.clone(), wait, &names, deferrals)
                        .await;
                    return None;
                }
                LimitKind::Concurrency(max) => {
                    if let Some(kept) = self.slots.lend(&bucket) {
                        slots.push(kept);
                        continue;
                    }
                    // Unique to this take of a slot: a slot kept and lent to
                    // another message keeps its holder, so a later delivery
                    // of this message must not find it as its own.
                    let holder = holder.get_or_insert_with(|| {
                        format!(
                            "{}:{}:{:08x}",
                            receipt.consumer.group,
                            message.id,
                            fastrand::u32(..)
                        )
                    });
                    let asked = tokio::time::Instant::now();
                    match self.slots.acquire(&bucket, max.get(), holder).await {
                        Ok(true) => slots.push(HeldSlot {
                            bucket,
                            holder: holder.clone(),
                            max: max.get(),
                            leased_at: asked,
                        }),
                        Ok(false) => {
                            self.slots.release(slots);
                            metrics::counter!("messaging_concurrency_limited_total", "topic" => self.topic.to_string(), "group" => receipt.consumer.group.clone(), "limit" => limit.name().to_owned())
                                .increment(1);
                            let wait = concurrency_backoff(deferrals);
                            // Its rate permits are given up (a message must not
                            // start long after its permit was due: late starts
                            // bunch up and pass the rate).
                            debug!(limit = limit.name(), key = %bucket.key, ?wait, "concurrency limit full; trying again later");
                            self.defer(
                                receipt,
                                message.clone(),
                                wait,
                                &[],
                                deferrals.saturating_add(1),
                            )
                            .await;
                            return None;
                        }
                        Err(backend_error) => {
                            self.leave_pending(slots, &bucket, &backend_error);
                            return None;
                        }
                    }
                }
            }
        }
        Some(slots)
    }

    /// Takes a permit of `bucket` and answers how long until it is due: one
    /// taken ahead when the subscription has one left (no backend call),
    /// else with the messages of this subscription that ask at the same time
    /// in one round trip: the first to ask starts a task that takes, in each
    /// call, as many permits as there are messages waiting (exactly what one
    /// call each would give) and, while the bucket has ample room, some ahead
    /// ([`LimitBackend::reserve_permits_ahead`]).
    async fn take_permit(
        &self,
        bucket: &LimitBucket,
        rate: Rate,
    ) -> Result<Duration, crate::BackendError> {
        if self.stock.take(bucket, 1) == 1 {
            return Ok(Duration::ZERO);
        }
        let (answer, answered) = tokio::sync::oneshot::channel();
        if self
            .permits
            .push(bucket, |queue: &mut PermitQueue| queue.0.push(answer))
        {
            tokio::spawn(serve_permits(
                self.backend.clone(),
                self.permits.clone(),
                self.stock.clone(),
                bucket.clone(),
                rate,
            ));
        }
        answered.await.unwrap_or_else(|_| {
            Err(crate::BackendError::command(
                "the permit request was dropped",
            ))
        })
    }

    /// A limit could not be asked: the message stays pending (reclaimed after
    /// the visibility timeout), its slots freed.
    fn leave_pending(
        &self,
        slots: Vec<HeldSlot>,
        bucket: &LimitBucket,
        backend_error: &crate::BackendError,
    ) {
        self.slots.release(slots);
        warn!(limit = %bucket.limit, error = %backend_error, "could not check a flow limit; the message stays pending and is redelivered");
    }

    /// Puts `message` back for `wait`: acknowledged and scheduled again in
    /// one atomic step (the backend's retry), with its `retry` count untouched.
    async fn defer(
        &self,
        receipt: &Receipt,
        mut message: Message,
        wait: Duration,
        reserved: &[&str],
        deferrals: u32,
    ) {
        let now = Utc::now();
        let deliver_at = now + chrono::Duration::from_std(wait).unwrap_or(chrono::Duration::MAX);
        message.status = MessageStatus::Pending;
        message.updated_at = now;
        message
            .metadata
            .insert(TARGET_GROUP_KEY.to_owned(), receipt.consumer.group.clone());
        if !reserved.is_empty() {
            message
                .metadata
                .insert(LIMIT_RESERVED_KEY.to_owned(), reserved.join(","));
        }
        if deferrals > 0 {
            message
                .metadata
                .insert(LIMIT_DEFERRALS_KEY.to_owned(), deferrals.to_string());
        }
        let result = self.backend.retry_at(receipt, &message, deliver_at).await;
        self.settle("defer", result, receipt);
    }

    /// Renews the leases of the slots a running handler holds (together
    /// with the other messages' requests of the same buckets).
    async fn renew_slots(&self, slots: &[HeldSlot]) {
        let renewals = slots.iter().map(|slot| async move {
            (
                slot,
                self.slots
                    .acquire(&slot.bucket, slot.max, &slot.holder)
                    .await,
            )
        });
        for (slot, renewed) in futures::future::join_all(renewals).await {
            match renewed {
                Ok(true) => {}
                Ok(false) => {
                    warn!(limit = %slot.bucket.limit, "a concurrency slot's lease ran out and its slot was taken; the handler goes on without it");
                }
                Err(backend_error) => {
                    warn!(limit = %slot.bucket.limit, error = %backend_error, "could not renew a concurrency slot");
                }
            }
        }
    }

    /// The timeout of one attempt at `message`: its own [`HANDLER_TIMEOUT_KEY`]
    /// when valid, else the subscription's.
    fn timeout_of(&self, message: &Message) -> Option<Duration> {
        if let Some(value) = message.metadata.get(HANDLER_TIMEOUT_KEY) {
            match parse_handler_timeout(value) {
                Ok(timeout) => return Some(timeout),
                Err(reason) => warn!(
                    key = HANDLER_TIMEOUT_KEY,
                    value = %value.chars().take(64).collect::<String>(),
                    reason,
                    "ignoring the message's handler timeout; the subscription's applies"
                ),
            }
        }
        self.options.handler_timeout
    }

    /// Runs the handler under its cancellation token, catching panics, while
    /// extending the delivery's lease; at `timeout` the token is cancelled and
    /// the handler's future dropped.
    async fn run_handler(
        &self,
        receipt: &Receipt,
        message: Message,
        timeout: Option<Duration>,
        token: CancellationToken,
        slots: &[HeldSlot],
    ) -> Attempt {
        let handler = self.handler.clone();
        let handled = AssertUnwindSafe(crate::handler::with_cancellation(
            token.clone(),
            async move { handler.handle(message).await },
        ))
        .catch_unwind();
        tokio::pin!(handled);
        let deadline = timeout.map(|timeout| tokio::time::Instant::now() + timeout);
        let extend_every = (self.options.visibility_timeout / 3).max(Duration::from_millis(3));
        let mut owned = true;
        loop {
            tokio::select! {
                biased;
                result = &mut handled => {
                    return Attempt::Returned(match result {
                        Ok(result) => result,
                        Err(panic) => Err(HandlerError::retry(format!("handler panicked: {}", panic_text(&*panic)))),
                    });
                }
                () = sleep_until(deadline) => {
                    token.cancel();
                    return Attempt::TimedOut(timeout.unwrap_or_default());
                }
                _ = tokio::time::sleep(extend_every), if owned => {
                    self.renew_slots(slots).await;
                    match self.backend.extend_lease(receipt).await {
                        Ok(Settlement::Settled) => {}
                        Ok(Settlement::LostOwnership) => {
                            warn!("lease lost: another consumer reclaimed this message");
                            owned = false;
                        }
                        Err(backend_error) => warn!(error = %backend_error, "could not extend lease"),
                    }
                }
            }
        }
    }

    async fn fail(&self, receipt: &Receipt, mut message: Message, failure: HandlerError) {
        let error = failure.to_string();
        let may_retry = match self.options.max_retries {
            Some(max) => message.retry < max,
            None => message.can_retry(),
        };
        if failure.is_permanent() || !may_retry {
            self.give_up(receipt, message, error).await;
            return;
        }
        // A forged or corrupt entry may carry any count: saturate, never overflow.
        message.retry = message.retry.saturating_add(1);
        message.error = Some(error.clone());
        message.status = MessageStatus::Pending;
        let delay = failure
            .retry_delay()
            .unwrap_or_else(|| self.options.retry.delay(message.retry))
            .min(self.options.max_retry_delay);
        let now = Utc::now();
        let deliver_at = now + chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::MAX);
        message.updated_at = now;
        message
            .metadata
            .insert(TARGET_GROUP_KEY.to_owned(), receipt.consumer.group.clone());
        message.metadata.insert(
            RETRY_AT_KEY.to_owned(),
            deliver_at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        );
        message
            .metadata
            .insert(RETRY_DELAY_MS_KEY.to_owned(), delay.as_millis().to_string());
        debug!(%error, attempt = message.retry, ?delay, "handler failed; retrying later");
        metrics::counter!("messaging_retried_total", "topic" => self.topic.to_string(), "group" => receipt.consumer.group.clone())
            .increment(1);
        let result = self.backend.retry_at(receipt, &message, deliver_at).await;
        self.settle("retry", result, receipt);
    }

    /// A delivery whose message expired before any attempt: never run;
    /// dead-lettered with `expired` or dropped, as the options say.
    async fn expire(&self, receipt: &Receipt, message: Message) {
        metrics::counter!("messaging_expired_total", "topic" => self.topic.to_string(), "group" => receipt.consumer.group.clone())
            .increment(1);
        match self.options.on_expired {
            OnExpired::DeadLetter => {
                self.give_up(receipt, message, EXPIRED.to_owned()).await;
            }
            OnExpired::Drop => {
                debug!(expires_at = ?message.expires_at, "dropping an expired message");
                self.settle("ack", self.backend.ack(receipt).await, receipt);
            }
        }
    }

    async fn give_up(&self, receipt: &Receipt, mut message: Message, error: String) {
        let now = Utc::now();
        message.status = MessageStatus::Failed;
        message.error = Some(error.clone());
        message.updated_at = now;
        message.processed_at = Some(now);
        warn!(%error, attempts = message.retry.saturating_add(1), "dead-lettering message");
        metrics::counter!("messaging_dead_lettered_total", "topic" => self.topic.to_string(), "group" => receipt.consumer.group.clone())
            .increment(1);
        let result = self.backend.dead_letter(receipt, &message, &error).await;
        let settled = matches!(result, Ok(Settlement::Settled));
        self.settle("dead-letter", result, receipt);
        if settled {
            self.release_unique(&message, true).await;
        }
    }

    /// A settled unique message starts its key's window (see
    /// [`crate::unique`]); a dead letter keeps holding it when it says so.
    async fn release_unique(&self, message: &Message, dead: bool) {
        use crate::unique::{UNIQUE_KEY, UNIQUE_WHILE_DEAD_KEY, UNIQUE_WINDOW_MS_KEY};
        let Some(key) = message.metadata.get(UNIQUE_KEY) else {
            return;
        };
        if dead && message.metadata.contains_key(UNIQUE_WHILE_DEAD_KEY) {
            return;
        }
        let Some(backend) = self.backend.unique_backend() else {
            return;
        };
        let window = message
            .metadata
            .get(UNIQUE_WINDOW_MS_KEY)
            .and_then(|ms| ms.parse::<u64>().ok())
            .map_or(Duration::ZERO, Duration::from_millis);
        if let Err(error) = backend
            .release_unique(&message.topic, key, message.id, window)
            .await
        {
            warn!(%error, key = %key, "the unique key was not released; it frees itself when its hold ends");
        }
    }

    fn settle(
        &self,
        action: &'static str,
        result: Result<Settlement, crate::BackendError>,
        receipt: &Receipt,
    ) {
        match result {
            Ok(Settlement::Settled) => {}
            Ok(Settlement::LostOwnership) => warn!(
                action,
                entry = %receipt.entry_id,
                "not settled: another consumer reclaimed this message and owns it now"
            ),
            Err(backend_error) => error!(
                action,
                entry = %receipt.entry_id,
                error = %backend_error,
                "settling failed; the message stays pending and will be redelivered"
            ),
        }
    }
}

/// What waits for the task serving one bucket of a [`Coalescer`].
trait Pending: Default {
    /// Nothing waits.
    fn is_empty(&self) -> bool;
}

/// Requests of one subscription to the buckets of its limits, queued by
/// bucket so that those made at the same time share one backend call: the
/// first request for a bucket that no task serves starts one, which takes
/// everything waiting, answers it with one call, and goes on until nothing
/// waits. A bucket has a queue exactly while a task serves it.
struct Coalescer<Q> {
    queues: std::sync::Mutex<std::collections::HashMap<LimitBucket, Q>>,
}

impl<Q> Default for Coalescer<Q> {
    fn default() -> Self {
        Self {
            queues: std::sync::Mutex::default(),
        }
    }
}

impl<Q: Pending> Coalescer<Q> {
    fn queues(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<LimitBucket, Q>> {
        self.queues
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Adds a request to `bucket`'s queue with `add`; `true` when no task
    /// serves the bucket, so the caller must start one.
    fn push(&self, bucket: &LimitBucket, add: impl FnOnce(&mut Q)) -> bool {
        let mut queues = self.queues();
        if let Some(queue) = queues.get_mut(bucket) {
            add(queue);
            return false;
        }
        let mut queue = Q::default();
        add(&mut queue);
        queues.insert(bucket.clone(), queue);
        true
    }

    /// Everything waiting for `bucket`, or `None` when nothing waits: then
    /// the queue is gone and its serving task must end.
    fn take(&self, bucket: &LimitBucket) -> Option<Q> {
        let mut queues = self.queues();
        let queue = queues.get_mut(bucket)?;
        if queue.is_empty() {
            queues.remove(bucket);
            return None;
        }
        Some(std::mem::take(queue))
    }
}

/// The messages of one subscription waiting for a permit of one bucket.
#[derive(Default)]
struct PermitQueue(Vec<tokio::sync::oneshot::Sender<Result<Duration, crate::BackendError>>>);

impl Pending for PermitQueue {
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Takes permits for the messages waiting on `bucket`, a call for all of
/// those waiting at a time (and some ahead, into `stock`), until none waits.
async fn serve_permits(
    backend: Arc<dyn MessageBackend>,
    queues: Arc<Coalescer<PermitQueue>>,
    stock: Arc<PermitStock>,
    bucket: LimitBucket,
    rate: Rate,
) {
    while let Some(PermitQueue(mut waiting)) = queues.take(&bucket) {
        // Those that came while the last call was out take what it got ahead.
        let wanted = u32::try_from(waiting.len()).unwrap_or(u32::MAX);
        let stocked = usize::try_from(stock.take(&bucket, wanted)).unwrap_or(usize::MAX);
        for answer in waiting.drain(..stocked.min(waiting.len())) {
            let _ = answer.send(Ok(Duration::ZERO));
        }
        if waiting.is_empty() {
            continue;
        }
        let count = u32::try_from(waiting.len()).unwrap_or(u32::MAX);
        let ahead = stock.ahead_wanted(&bucket, count, rate);
        let taken = match backend.limit_backend() {
            Some(limits) => {
                limits
                    .reserve_permits_ahead(&bucket, rate, count, ahead)
                    .await
            }
            None => Err(no_limits()),
        };
        match taken {
            Ok((permits, taken_ahead)) => {
                stock.refill(&bucket, taken_ahead.min(ahead));
                for (k, answer) in (0..count).zip(waiting) {
                    let _ = answer.send(Ok(permits.wait(k)));
                }
            }
            Err(backend_error) => {
                let text = backend_error.to_string();
                for answer in waiting {
                    let _ = answer.send(Err(crate::BackendError::command(text.clone())));
                }
            }
        }
    }
}

/// Rate permits a subscription took ahead, by bucket: each was due when it
/// was taken, and is handed out for
/// [`SubscribeOptions::LIMIT_PREFETCH_WINDOW`] after its answer came, then
/// thrown away (never used later, so a start is never far from its permit's
/// time). How many are taken ahead follows what was used: twice what the
/// subscription used of the last stock, or the size of the batch asking.
#[derive(Default)]
struct PermitStock {
    buckets: std::sync::Mutex<std::collections::HashMap<LimitBucket, Stock>>,
}

#[derive(Default)]
struct Stock {
    left: u32,
    /// When the permits left are thrown away.
    until: Option<tokio::time::Instant>,
    /// Handed out of the present stock.
    used: u32,
}

impl PermitStock {
    fn buckets(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<LimitBucket, Stock>> {
        self.buckets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Takes up to `wanted` usable permits of `bucket`; answers how many.
    fn take(&self, bucket: &LimitBucket, wanted: u32) -> u32 {
        let mut buckets = self.buckets();
        let Some(stock) = buckets.get_mut(bucket) else {
            return 0;
        };
        if stock.left == 0 {
            return 0;
        }
        if stock
            .until
            .is_none_or(|until| tokio::time::Instant::now() >= until)
        {
            // Not used in its window: gone for good.
            stock.left = 0;
            return 0;
        }
        let taken = stock.left.min(wanted);
        stock.left -= taken;
        stock.used = stock.used.saturating_add(taken);
        taken
    }

    /// How many permits to take ahead with `count` asked.
    fn ahead_wanted(&self, bucket: &LimitBucket, count: u32, rate: Rate) -> u32 {
        let used = self.buckets().get(bucket).map_or(0, |stock| stock.used);
        let from_batch = if count > 1 { count } else { 0 };
        used.saturating_mul(2)
            .max(from_batch)
            .min(SubscribeOptions::LIMIT_PREFETCH_MAX)
            .min(rate.permits() / 16)
    }

    /// A new stock of `ahead` permits, due already, in place of what is left.
    fn refill(&self, bucket: &LimitBucket, ahead: u32) {
        let now = tokio::time::Instant::now();
        let mut buckets = self.buckets();
        if buckets.len() > 10_000 {
            buckets
                .retain(|_, stock| stock.left > 0 && stock.until.is_some_and(|until| until > now));
        }
        if ahead == 0 && !buckets.contains_key(bucket) {
            return;
        }
        buckets.insert(
            bucket.clone(),
            Stock {
                left: ahead,
                until: Some(now + SubscribeOptions::LIMIT_PREFETCH_WINDOW),
                used: 0,
            },
        );
    }
}

fn no_limits() -> crate::BackendError {
    crate::BackendError::command("the backend keeps no flow limits")
}

/// The slot requests of one subscription for one bucket: holders taking or
/// renewing a slot (in the order asked), and holders freeing theirs.
#[derive(Default)]
struct SlotQueue {
    /// The bucket's `max` (one limit of one subscription: always the same).
    max: u32,
    acquiring: Vec<String>,
    answers: Vec<tokio::sync::oneshot::Sender<Result<bool, crate::BackendError>>>,
    releasing: Vec<String>,
}

impl Pending for SlotQueue {
    fn is_empty(&self) -> bool {
        self.acquiring.is_empty() && self.releasing.is_empty()
    }
}

/// A subscription's concurrency slots: taken, renewed and freed through
/// per-bucket queues, so the messages asking at the same time share one
/// [`LimitBackend::acquire_slots`](crate::limit::LimitBackend::acquire_slots)
/// call, and the slots freed meanwhile one
/// [`release_slots`](crate::limit::LimitBackend::release_slots) call.
#[derive(Clone)]
struct Slots {
    backend: Arc<dyn MessageBackend>,
    queues: Arc<Coalescer<SlotQueue>>,
    /// Slots kept after their message, for the next one.
    pool: Arc<SlotPool>,
    /// The subscription's visibility timeout.
    lease: Duration,
}

impl Slots {
    /// Takes (or renews) a slot of `bucket` for `holder`: `false` when all
    /// `max` are held.
    async fn acquire(
        &self,
        bucket: &LimitBucket,
        max: u32,
        holder: &str,
    ) -> Result<bool, crate::BackendError> {
        let (answer, answered) = tokio::sync::oneshot::channel();
        let lead = self.queues.push(bucket, |queue: &mut SlotQueue| {
            queue.max = max;
            queue.acquiring.push(holder.to_owned());
            queue.answers.push(answer);
        });
        if lead {
            tokio::spawn(serve_slots(self.clone(), bucket.clone()));
        }
        answered.await.unwrap_or_else(|_| {
            Err(crate::BackendError::command(
                "the concurrency slot request was dropped",
            ))
        })
    }

    /// Gives up `slots`, without waiting: each is kept for the next message
    /// of its bucket when the pool has room for it ([`SlotPool`]), else
    /// freed (a lost release only keeps a slot until its lease ends).
    fn release(&self, slots: Vec<HeldSlot>) {
        let freed = self.keep(slots);
        self.free(freed);
    }

    fn free(&self, slots: Vec<HeldSlot>) {
        for slot in slots {
            let HeldSlot { bucket, holder, .. } = slot;
            let lead = self.queues.push(&bucket, |queue: &mut SlotQueue| {
                queue.releasing.push(holder);
            });
            if lead {
                tokio::spawn(serve_slots(self.clone(), bucket));
            }
        }
    }

    /// A slot kept from an earlier message of `bucket`, lent to this one.
    fn lend(&self, bucket: &LimitBucket) -> Option<HeldSlot> {
        let now = tokio::time::Instant::now();
        let mut stale = Vec::new();
        let lent = {
            let mut pool = self.pool.buckets();
            let kept = pool.get_mut(bucket)?;
            let mut lent = None;
            while let Some(slot) = kept.idle.pop() {
                if self.usable(&slot.slot, slot.kept_at, now) {
                    lent = Some(slot.slot);
                    break;
                }
                stale.push(slot.slot);
            }
            lent
        };
        self.free(stale);
        lent
    }

    /// Whether a slot kept since `kept_at` may still be lent at `now`: kept
    /// for less than [`SubscribeOptions::LIMIT_KEEP_SLOT`], with at least half
    /// of its lease left (a handler renews it after a third).
    fn usable(
        &self,
        slot: &HeldSlot,
        kept_at: tokio::time::Instant,
        now: tokio::time::Instant,
    ) -> bool {
        now < kept_at + SubscribeOptions::LIMIT_KEEP_SLOT && now < slot.leased_at + self.lease / 2
    }

    /// Keeps what the pool has room for; answers the others.
    fn keep(&self, slots: Vec<HeldSlot>) -> Vec<HeldSlot> {
        let now = tokio::time::Instant::now();
        let mut freed = Vec::new();
        let mut sweep = Vec::new();
        {
            let mut pool = self.pool.buckets();
            for slot in slots {
                let room = (slot.max / 16).min(SubscribeOptions::LIMIT_KEEP_SLOTS_MAX);
                if room == 0 || !self.usable(&slot, now, now) {
                    freed.push(slot);
                    continue;
                }
                let kept = pool.entry(slot.bucket.clone()).or_default();
                if kept.idle.len() >= usize::try_from(room).unwrap_or(usize::MAX) {
                    freed.push(slot);
                    continue;
                }
                if !kept.swept {
                    kept.swept = true;
                    sweep.push(slot.bucket.clone());
                }
                kept.idle.push(KeptSlot { slot, kept_at: now });
            }
        }
        for bucket in sweep {
            tokio::spawn(sweep_kept_slots(self.clone(), bucket));
        }
        freed
    }

    /// Frees every slot kept (the subscription is closing).
    fn release_kept(&self) {
        let kept: Vec<HeldSlot> = self
            .pool
            .buckets()
            .values_mut()
            .flat_map(|kept| std::mem::take(&mut kept.idle))
            .map(|kept| kept.slot)
            .collect();
        self.free(kept);
    }
}

/// Concurrency slots a subscription keeps for a moment after their message
/// is done ([`SubscribeOptions::LIMIT_KEEP_SLOT`]), lent to its next message
/// of the bucket without a backend call. They stay held in the backend the
/// whole time (the limit counts them), at most a sixteenth of the limit's
/// `max` per bucket and subscription, and none for a limit under 16.
#[derive(Default)]
struct SlotPool {
    buckets: std::sync::Mutex<std::collections::HashMap<LimitBucket, KeptSlots>>,
}

#[derive(Default)]
struct KeptSlots {
    idle: Vec<KeptSlot>,
    /// A task frees those kept too long.
    swept: bool,
}

struct KeptSlot {
    slot: HeldSlot,
    kept_at: tokio::time::Instant,
}

impl SlotPool {
    fn buckets(
        &self,
    ) -> std::sync::MutexGuard<'_, std::collections::HashMap<LimitBucket, KeptSlots>> {
        self.buckets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Frees `bucket`'s kept slots once they are kept too long, until none is
/// kept (so an idle subscription holds none for longer than the window).
async fn sweep_kept_slots(slots: Slots, bucket: LimitBucket) {
    loop {
        // Until the first kept slot's window ends.
        let next = {
            let mut pool = slots.pool.buckets();
            let Some(kept) = pool.get_mut(&bucket) else {
                return;
            };
            match kept.idle.iter().map(|kept| kept.kept_at).min() {
                Some(first) => first + SubscribeOptions::LIMIT_KEEP_SLOT,
                None => {
                    pool.remove(&bucket);
                    return;
                }
            }
        };
        tokio::time::sleep_until(next).await;
        let now = tokio::time::Instant::now();
        let stale = {
            let mut pool = slots.pool.buckets();
            let Some(kept) = pool.get_mut(&bucket) else {
                return;
            };
            let (stale, fresh): (Vec<KeptSlot>, Vec<KeptSlot>) = std::mem::take(&mut kept.idle)
                .into_iter()
                .partition(|kept| !slots.usable(&kept.slot, kept.kept_at, now));
            kept.idle = fresh;
            stale
        };
        slots.free(stale.into_iter().map(|kept| kept.slot).collect());
    }
}

/// Serves `bucket`'s slot requests, one `acquire_slots` call for all the
/// holders asking at a time and one `release_slots` call for all those
/// freeing theirs, until nothing waits.
async fn serve_slots(slots: Slots, bucket: LimitBucket) {
    while let Some(queue) = slots.queues.take(&bucket) {
        let SlotQueue {
            max,
            acquiring,
            answers,
            mut releasing,
        } = queue;
        let Some(limits) = slots.backend.limit_backend() else {
            for answer in answers {
                let _ = answer.send(Err(no_limits()));
            }
            continue;
        };
        // A holder asking again (a delivery of the same message) keeps the
        // slot it is freeing.
        if !acquiring.is_empty() {
            releasing.retain(|holder| !acquiring.contains(holder));
        }
        let release = async {
            if releasing.is_empty() {
                return;
            }
            if let Err(backend_error) = limits.release_slots(&bucket, &releasing).await {
                warn!(limit = %bucket.limit, error = %backend_error, freed = releasing.len(), "could not free concurrency slots; they free themselves when their leases end");
            }
        };
        let acquire = async {
            if acquiring.is_empty() {
                return;
            }
            match limits
                .acquire_slots(&bucket, max, &acquiring, slots.lease)
                .await
            {
                Ok(taken) => {
                    for (taken, answer) in taken.into_iter().zip(answers) {
                        let _ = answer.send(Ok(taken));
                    }
                }
                Err(backend_error) => {
                    let text = backend_error.to_string();
                    for answer in answers {
                        let _ = answer.send(Err(crate::BackendError::command(text.clone())));
                    }
                }
            }
        };
        futures::join!(release, acquire);
    }
}

/// A concurrency slot a message holds while its handler runs.
struct HeldSlot {
    bucket: LimitBucket,
    holder: String,
    /// The limit's `max`, for renewals.
    max: u32,
    /// When the slot was asked for (its lease in the backend ends at least
    /// a lease after it).
    leased_at: tokio::time::Instant,
}

/// Frees a message's slots when its processing ends, however it ends.
struct SlotRelease {
    slots: Slots,
    held: Vec<HeldSlot>,
}

impl Drop for SlotRelease {
    fn drop(&mut self) {
        if !self.held.is_empty() {
            self.slots.release(std::mem::take(&mut self.held));
        }
    }
}

/// The dead letter's error of an expired message.
const EXPIRED: &str = "expired";

/// Resolves at `deadline`, or never without one.
async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

fn panic_text(panic: &(dyn std::any::Any + Send)) -> String {
    if let Some(text) = panic.downcast_ref::<&str>() {
        (*text).to_owned()
    } else if let Some(text) = panic.downcast_ref::<String>() {
        text.clone()
    } else {
        "non-string panic payload".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limit::LimitBackend;

    fn bucket() -> LimitBucket {
        LimitBucket {
            limit: "l".to_owned(),
            key: "k".to_owned(),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn permits_taken_ahead_are_thrown_away_after_their_window() {
        let stock = PermitStock::default();
        assert_eq!(stock.take(&bucket(), 1), 0, "nothing taken ahead yet");
        stock.refill(&bucket(), 3);
        assert_eq!(stock.take(&bucket(), 2), 2);
        tokio::time::advance(SubscribeOptions::LIMIT_PREFETCH_WINDOW).await;
        assert_eq!(stock.take(&bucket(), 5), 0, "the third is past its window");
        assert_eq!(stock.take(&bucket(), 5), 0, "and never used later");
    }

    #[test]
    fn permits_asked_ahead_follow_what_was_used_within_the_caps() {
        let fast = Rate::new(Rate::MAX_PERMITS, Duration::from_millis(1)).unwrap();
        let stock = PermitStock::default();
        assert_eq!(stock.ahead_wanted(&bucket(), 1, fast), 0, "a lone message");
        assert_eq!(
            stock.ahead_wanted(&bucket(), 64, fast),
            64,
            "the batch asking"
        );
        stock.refill(&bucket(), 64);
        assert_eq!(stock.take(&bucket(), 40), 40);
        assert_eq!(
            stock.ahead_wanted(&bucket(), 1, fast),
            80,
            "twice what was used"
        );
        assert_eq!(stock.take(&bucket(), 1_000), 24);
        stock.refill(&bucket(), 0);
        assert_eq!(stock.ahead_wanted(&bucket(), 1, fast), 0);
        stock.refill(&bucket(), 5_000);
        assert_eq!(stock.take(&bucket(), 5_000), 5_000);
        assert_eq!(
            stock.ahead_wanted(&bucket(), 1, fast),
            SubscribeOptions::LIMIT_PREFETCH_MAX
        );
        let slow = Rate::new(31, Duration::from_secs(1)).unwrap();
        assert_eq!(
            stock.ahead_wanted(&bucket(), 64, slow),
            1,
            "a sixteenth of the burst"
        );
    }

    fn slots(backend: &Arc<crate::InMemoryBackend>) -> Slots {
        Slots {
            backend: backend.clone(),
            queues: Arc::default(),
            pool: Arc::default(),
            lease: Duration::from_secs(30),
        }
    }

    async fn held(backend: &crate::InMemoryBackend, holder: &str, max: u32) -> HeldSlot {
        let leased_at = tokio::time::Instant::now();
        let taken = backend
            .acquire_slots(
                &bucket(),
                max,
                &[holder.to_owned()],
                Duration::from_secs(30),
            )
            .await
            .unwrap();
        assert_eq!(taken, [true]);
        HeldSlot {
            bucket: bucket(),
            holder: holder.to_owned(),
            max,
            leased_at,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_kept_slot_is_lent_once_then_freed_after_its_window() {
        let backend = Arc::new(crate::InMemoryBackend::new());
        let slots = slots(&backend);
        slots.release(vec![held(&backend, "a", 16).await]);
        let lent = slots.lend(&bucket()).expect("kept for the next message");
        assert_eq!(lent.holder, "a");
        assert!(slots.lend(&bucket()).is_none(), "lent once");
        slots.release(vec![lent]);
        // Not lent in its window: the sweeper frees it as time passes.
        tokio::time::advance(SubscribeOptions::LIMIT_KEEP_SLOT * 2).await;
        for _ in 0..100 {
            tokio::task::yield_now().await;
        }
        let probes: Vec<String> = (0..16).map(|k| format!("probe-{k}")).collect();
        let taken = backend
            .acquire_slots(&bucket(), 16, &probes, Duration::from_secs(30))
            .await
            .unwrap();
        assert!(taken.iter().all(|taken| *taken), "the kept slot was freed");
        assert!(slots.lend(&bucket()).is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn a_limit_under_16_keeps_no_slot() {
        let backend = Arc::new(crate::InMemoryBackend::new());
        let slots = slots(&backend);
        slots.release(vec![held(&backend, "a", 15).await]);
        assert!(slots.lend(&bucket()).is_none());
    }
}
