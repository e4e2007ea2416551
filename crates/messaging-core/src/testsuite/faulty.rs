//! A forwarding backend that injects faults, for tests of what is built on a
//! backend (the service, the runtime, a CLI): so no test forwards every method
//! of [`MessageBackend`] and [`BackendAdmin`] by hand.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use messaging_model::{Message, Topic};

use crate::{
    Backend, BackendAdmin, BackendError, BackendHealth, CancelBackend, ConsumerId, DeadLetter,
    Delivery, MessageBackend, ReadOptions, Receipt, Settlement, StartFrom, TopicStats,
};

/// One operation of a backend, to aim a fault or an observer at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Operation {
    /// [`MessageBackend::publish`].
    Publish,
    /// [`MessageBackend::publish_batch`].
    PublishBatch,
    /// [`MessageBackend::schedule`].
    Schedule,
    /// [`MessageBackend::ensure_group`].
    EnsureGroup,
    /// [`MessageBackend::read`].
    Read,
    /// [`MessageBackend::reclaim_idle`].
    ReclaimIdle,
    /// [`MessageBackend::extend_lease`].
    ExtendLease,
    /// [`MessageBackend::ack`].
    Ack,
    /// [`MessageBackend::retry_at`].
    RetryAt,
    /// [`MessageBackend::dead_letter`].
    DeadLetter,
    /// [`BackendAdmin::create_topic`].
    CreateTopic,
    /// [`BackendAdmin::delete_topic`].
    DeleteTopic,
    /// [`BackendAdmin::list_topics`].
    ListTopics,
    /// [`BackendAdmin::delete_group`].
    DeleteGroup,
    /// [`BackendAdmin::dead_letters`].
    DeadLetters,
    /// [`BackendAdmin::replay_dead_letter`].
    ReplayDeadLetter,
    /// [`BackendAdmin::purge_dead_letters`].
    PurgeDeadLetters,
    /// [`BackendAdmin::stats`].
    Stats,
    /// [`BackendAdmin::health`].
    Health,
    /// [`PauseBackend::set_paused`](crate::PauseBackend::set_paused).
    SetPaused,
    /// [`PauseBackend::pause_state`](crate::PauseBackend::pause_state).
    PauseState,
}

/// What an observed operation returned, owned so an observer's future may keep it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Outcome {
    /// A settling operation (extend lease, ack, retry, dead-letter) answered.
    Settled(Settlement),
    /// [`Operation::PauseState`] answered this state.
    Paused(crate::PauseState),
    /// Another operation succeeded.
    Done,
    /// The operation failed (an injected fault or the wrapped backend's error), with its text.
    Failed(String),
}

/// What [`FaultyBackend::observe`] takes: called after each operation, and
/// awaited before the result is handed back.
type Observer = Arc<dyn Fn(Operation, Outcome) -> BoxFuture<'static, ()> + Send + Sync>;

/// Makes the error of an injected failure.
type ErrorFactory = Arc<dyn Fn() -> BackendError + Send + Sync>;

#[derive(Default)]
struct Faults {
    /// Failures left to inject, per operation.
    failures: HashMap<Operation, (u64, Option<ErrorFactory>)>,
    /// Delays before forwarding, per operation.
    delays: HashMap<Operation, Duration>,
    /// Calls seen, per operation.
    calls: HashMap<Operation, u64>,
}

/// Wraps any [`Backend`] and forwards every call to it, with faults injected
/// on demand: fail the next N calls of an operation, fail every call while
/// [`down`](Self::set_down), delay an operation, or observe what each returned.
/// The optional abilities ([`CancelBackend`], the unique backend) are the
/// wrapped backend's, without faults; its [`PauseBackend`](crate::PauseBackend),
/// when it has one, goes through the faults and the observer
/// ([`Operation::SetPaused`], [`Operation::PauseState`]).
///
/// ```
/// use std::sync::Arc;
/// use messaging_core::testsuite::{FaultyBackend, Operation};
/// use messaging_core::{InMemoryBackend, MessagingError, MessagingService};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let backend = Arc::new(FaultyBackend::new(Arc::new(InMemoryBackend::new())));
/// let service = MessagingService::new(backend.clone());
/// backend.fail_next(Operation::Publish, 1);
/// let refused = service.publish("a.b", serde_json::json!({})).await;
/// assert!(matches!(refused, Err(MessagingError::Backend(error)) if error.is_transient()));
/// service.publish("a.b", serde_json::json!({})).await.unwrap();
/// assert_eq!(backend.calls(Operation::Publish), 2);
/// # }
/// ```
pub struct FaultyBackend {
    inner: Arc<dyn Backend>,
    name: Option<&'static str>,
    down: AtomicBool,
    faults: Mutex<Faults>,
    observer: Mutex<Option<Observer>>,
}

impl std::fmt::Debug for FaultyBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FaultyBackend")
            .field("inner", &self.inner.name())
            .field("down", &self.down.load(Ordering::SeqCst))
            .finish_non_exhaustive()
    }
}

impl FaultyBackend {
    /// Forwards to `inner`, with no fault yet.
    pub fn new(inner: Arc<dyn Backend>) -> Self {
        Self {
            inner,
            name: None,
            down: AtomicBool::new(false),
            faults: Mutex::new(Faults::default()),
            observer: Mutex::new(None),
        }
    }

    /// Reports `name` as [`MessageBackend::name`] instead of the wrapped backend's.
    pub fn with_name(mut self, name: &'static str) -> Self {
        self.name = Some(name);
        self
    }

    /// The wrapped backend.
    pub fn inner(&self) -> &Arc<dyn Backend> {
        &self.inner
    }

    /// While `down`, every operation fails as an unreachable server would
    /// ([`BackendError::Unavailable`], transient).
    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }

    /// The next `n` calls of `operation` fail as an unreachable server would.
    pub fn fail_next(&self, operation: Operation, n: u64) {
        self.lock().failures.insert(operation, (n, None));
    }

    /// The next `n` calls of `operation` fail with the error `error` makes.
    pub fn fail_next_with(
        &self,
        operation: Operation,
        n: u64,
        error: impl Fn() -> BackendError + Send + Sync + 'static,
    ) {
        self.lock()
            .failures
            .insert(operation, (n, Some(Arc::new(error))));
    }

    /// Every call of `operation` waits `delay` before it is forwarded (zero: no delay).
    pub fn delay(&self, operation: Operation, delay: Duration) {
        self.lock().delays.insert(operation, delay);
    }

    /// Calls `observer` after every operation with what it returned, and awaits
    /// it before handing the result back (replacing an earlier observer).
    pub fn observe(
        &self,
        observer: impl Fn(Operation, Outcome) -> BoxFuture<'static, ()> + Send + Sync + 'static,
    ) {
        *self
            .observer
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(Arc::new(observer));
    }

    /// How many times `operation` was called, failed calls included.
    pub fn calls(&self, operation: Operation) -> u64 {
        self.lock().calls.get(&operation).copied().unwrap_or(0)
    }

    fn lock(&self) -> MutexGuard<'_, Faults> {
        self.faults
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Counts the call, then waits its delay and answers its injected failure, if any.
    async fn before(&self, operation: Operation) -> Result<(), BackendError> {
        let (delay, failure) = {
            let mut faults = self.lock();
            *faults.calls.entry(operation).or_insert(0) += 1;
            let failure = match faults.failures.get_mut(&operation) {
                Some((left, error)) if *left > 0 => {
                    *left -= 1;
                    Some(error.clone())
                }
                _ => None,
            };
            (faults.delays.get(&operation).copied(), failure)
        };
        if let Some(delay) = delay.filter(|delay| !delay.is_zero()) {
            tokio::time::sleep(delay).await;
        }
        if self.down.load(Ordering::SeqCst) {
            return Err(unreachable());
        }
        match failure {
            Some(Some(error)) => Err(error()),
            Some(None) => Err(unreachable()),
            None => Ok(()),
        }
    }

    /// Hands `result` to the observer, if any, and back.
    async fn after<T>(
        &self,
        operation: Operation,
        result: Result<T, BackendError>,
        outcome: impl FnOnce(&T) -> Outcome,
    ) -> Result<T, BackendError> {
        let observer = self
            .observer
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone();
        if let Some(observer) = observer {
            let seen = match &result {
                Ok(value) => outcome(value),
                Err(error) => Outcome::Failed(error.to_string()),
            };
            observer(operation, seen).await;
        }
        result
    }

    /// Runs one forwarded call with the faults and the observer around it.
    async fn run<T>(
        &self,
        operation: Operation,
        call: impl Future<Output = Result<T, BackendError>>,
        outcome: impl FnOnce(&T) -> Outcome,
    ) -> Result<T, BackendError> {
        let result = match self.before(operation).await {
            Ok(()) => call.await,
            Err(error) => Err(error),
        };
        self.after(operation, result, outcome).await
    }
}

/// The error of an injected failure: the server could not be reached.
fn unreachable() -> BackendError {
    BackendError::unavailable(std::io::Error::new(
        std::io::ErrorKind::ConnectionRefused,
        "connection refused (injected by FaultyBackend)",
    ))
}

fn done<T>(_: &T) -> Outcome {
    Outcome::Done
}

fn settled(settlement: &Settlement) -> Outcome {
    Outcome::Settled(*settlement)
}

#[async_trait]
impl MessageBackend for FaultyBackend {
    fn name(&self) -> &'static str {
        self.name.unwrap_or_else(|| self.inner.name())
    }

    async fn consumer_stopped(&self, consumer: &ConsumerId) {
        self.inner.consumer_stopped(consumer).await;
    }

    async fn publish(&self, message: &Message) -> Result<String, BackendError> {
        self.run(Operation::Publish, self.inner.publish(message), done)
            .await
    }

    async fn publish_batch(&self, messages: &[Message]) -> Result<Vec<String>, BackendError> {
        self.run(
            Operation::PublishBatch,
            self.inner.publish_batch(messages),
            done,
        )
        .await
    }

    async fn schedule(&self, message: &Message, at: DateTime<Utc>) -> Result<(), BackendError> {
        self.run(Operation::Schedule, self.inner.schedule(message, at), done)
            .await
    }

    async fn ensure_group(
        &self,
        topic: &Topic,
        group: &str,
        start: StartFrom,
    ) -> Result<(), BackendError> {
        self.run(
            Operation::EnsureGroup,
            self.inner.ensure_group(topic, group, start),
            done,
        )
        .await
    }

    async fn read(
        &self,
        consumer: &ConsumerId,
        options: &ReadOptions,
    ) -> Result<Vec<Delivery>, BackendError> {
        self.run(Operation::Read, self.inner.read(consumer, options), done)
            .await
    }

    async fn reclaim_idle(
        &self,
        consumer: &ConsumerId,
        min_idle: Duration,
        count: usize,
    ) -> Result<Vec<Delivery>, BackendError> {
        self.run(
            Operation::ReclaimIdle,
            self.inner.reclaim_idle(consumer, min_idle, count),
            done,
        )
        .await
    }

    async fn extend_lease(&self, receipt: &Receipt) -> Result<Settlement, BackendError> {
        self.run(
            Operation::ExtendLease,
            self.inner.extend_lease(receipt),
            settled,
        )
        .await
    }

    async fn ack(&self, receipt: &Receipt) -> Result<Settlement, BackendError> {
        self.run(Operation::Ack, self.inner.ack(receipt), settled)
            .await
    }

    async fn retry_at(
        &self,
        receipt: &Receipt,
        message: &Message,
        at: DateTime<Utc>,
    ) -> Result<Settlement, BackendError> {
        self.run(
            Operation::RetryAt,
            self.inner.retry_at(receipt, message, at),
            settled,
        )
        .await
    }

    async fn dead_letter(
        &self,
        receipt: &Receipt,
        message: &Message,
        error: &str,
    ) -> Result<Settlement, BackendError> {
        self.run(
            Operation::DeadLetter,
            self.inner.dead_letter(receipt, message, error),
            settled,
        )
        .await
    }

    fn cancel_backend(&self) -> Option<&dyn CancelBackend> {
        self.inner.cancel_backend()
    }

    fn unique_backend(&self) -> Option<&dyn crate::unique::UniqueBackend> {
        self.inner.unique_backend()
    }

    fn pause_backend(&self) -> Option<&dyn crate::PauseBackend> {
        self.inner
            .pause_backend()
            .map(|_| self as &dyn crate::PauseBackend)
    }
}

#[async_trait]
impl crate::PauseBackend for FaultyBackend {
    async fn set_paused(
        &self,
        topic: &Topic,
        group: Option<&str>,
        paused: bool,
    ) -> Result<bool, BackendError> {
        let pause = self
            .inner
            .pause_backend()
            .expect("offered only when the inner has one");
        self.run(
            Operation::SetPaused,
            pause.set_paused(topic, group, paused),
            done,
        )
        .await
    }

    async fn pause_state(&self, topic: &Topic) -> Result<crate::PauseState, BackendError> {
        let pause = self
            .inner
            .pause_backend()
            .expect("offered only when the inner has one");
        self.run(Operation::PauseState, pause.pause_state(topic), |state| {
            Outcome::Paused(state.clone())
        })
        .await
    }
}

#[async_trait]
impl BackendAdmin for FaultyBackend {
    async fn create_topic(&self, topic: &Topic) -> Result<(), BackendError> {
        self.run(Operation::CreateTopic, self.inner.create_topic(topic), done)
            .await
    }

    async fn delete_topic(&self, topic: &Topic) -> Result<bool, BackendError> {
        self.run(Operation::DeleteTopic, self.inner.delete_topic(topic), done)
            .await
    }

    async fn list_topics(&self) -> Result<Vec<Topic>, BackendError> {
        self.run(Operation::ListTopics, self.inner.list_topics(), done)
            .await
    }

    async fn delete_group(&self, topic: &Topic, group: &str) -> Result<bool, BackendError> {
        self.run(
            Operation::DeleteGroup,
            self.inner.delete_group(topic, group),
            done,
        )
        .await
    }

    async fn dead_letters(
        &self,
        topic: &Topic,
        limit: usize,
    ) -> Result<Vec<DeadLetter>, BackendError> {
        self.run(
            Operation::DeadLetters,
            self.inner.dead_letters(topic, limit),
            done,
        )
        .await
    }

    async fn find_dead_letter(
        &self,
        topic: &Topic,
        id: &str,
    ) -> Result<Option<DeadLetter>, BackendError> {
        self.run(
            Operation::DeadLetters,
            self.inner.find_dead_letter(topic, id),
            done,
        )
        .await
    }

    async fn replay_dead_letter(&self, topic: &Topic, id: &str) -> Result<bool, BackendError> {
        self.run(
            Operation::ReplayDeadLetter,
            self.inner.replay_dead_letter(topic, id),
            done,
        )
        .await
    }

    async fn purge_dead_letters(&self, topic: &Topic) -> Result<u64, BackendError> {
        self.run(
            Operation::PurgeDeadLetters,
            self.inner.purge_dead_letters(topic),
            done,
        )
        .await
    }

    async fn stats(&self, topic: &Topic) -> Result<TopicStats, BackendError> {
        self.run(Operation::Stats, self.inner.stats(topic), done)
            .await
    }

    async fn health(&self) -> Result<BackendHealth, BackendError> {
        self.run(Operation::Health, self.inner.health(), done).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::InMemoryBackend;

    fn faulty() -> FaultyBackend {
        FaultyBackend::new(Arc::new(InMemoryBackend::new()))
    }

    #[tokio::test]
    async fn fails_the_next_n_calls_then_forwards() {
        let backend = faulty();
        let topic: Topic = "a.b".parse().unwrap();
        backend.fail_next_with(Operation::CreateTopic, 2, || {
            BackendError::command(std::io::Error::other("refused"))
        });
        for _ in 0..2 {
            let error = backend.create_topic(&topic).await.unwrap_err();
            assert!(!error.is_transient(), "{error}");
        }
        backend.create_topic(&topic).await.unwrap();
        assert_eq!(backend.list_topics().await.unwrap(), vec![topic]);
        assert_eq!(backend.calls(Operation::CreateTopic), 3);
    }

    #[tokio::test]
    async fn down_fails_everything_until_up() {
        let backend = faulty().with_name("switchable");
        assert_eq!(backend.name(), "switchable");
        backend.set_down(true);
        assert!(backend.health().await.unwrap_err().is_transient());
        backend.set_down(false);
        backend.health().await.unwrap();
    }

    #[tokio::test]
    async fn observers_see_every_outcome() {
        let backend = faulty();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        backend.observe(move |operation, outcome| {
            log.lock().unwrap().push((operation, outcome));
            Box::pin(async {})
        });
        backend.fail_next(Operation::ListTopics, 1);
        let _ = backend.list_topics().await;
        backend.list_topics().await.unwrap();
        let seen = seen.lock().unwrap();
        assert!(matches!(
            seen[0],
            (Operation::ListTopics, Outcome::Failed(_))
        ));
        assert_eq!(seen[1], (Operation::ListTopics, Outcome::Done));
    }

    #[test]
    fn is_send_sync_and_object_safe() {
        fn assert_send_sync<T: Send + Sync + ?Sized>() {}
        assert_send_sync::<FaultyBackend>();
        let _: Arc<dyn Backend> = Arc::new(faulty());
    }
}
