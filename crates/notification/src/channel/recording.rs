//! A channel that records what it is given and fails on demand: the stub other
//! crates' tests use instead of a real provider.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::watch;

use super::{
    EmailChannel, EmailMessage, PushChannel, PushMessage, SendReceipt, SmsChannel, SmsMessage,
};
use crate::NotificationError;

/// How a [`RecordingChannel`] fails when told to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum StubFailure {
    /// A temporary failure (SMTP 451 for email, HTTP 503 for SMS and push).
    Transient,
    /// A permanent failure (SMTP 550 for email, HTTP 400 for SMS and push).
    Permanent,
}

/// Records every message it is given, in order, and fails when told to.
/// One type serves the three channels: `RecordingChannel<EmailMessage>` is an
/// [`EmailChannel`], `RecordingChannel<SmsMessage>` an [`SmsChannel`],
/// `RecordingChannel<PushMessage>` a [`PushChannel`]. Clones share the record.
///
/// ```
/// use notification::channel::{EmailAddress, EmailChannel, EmailMessage, RecordingChannel, StubFailure};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let channel = RecordingChannel::<EmailMessage>::new();
/// let email = EmailMessage::new(EmailAddress::parse("a@example.com").unwrap(), "Hi").with_text("x");
/// channel.fail_next(1, StubFailure::Transient);
/// assert!(channel.send_email(&email).await.unwrap_err().is_transient());
/// channel.send_email(&email).await.unwrap();
/// assert_eq!(channel.sent().len(), 1);
/// assert_eq!(channel.attempts(), 2);
/// # }
/// ```
pub struct RecordingChannel<M> {
    inner: Arc<Inner<M>>,
}

struct Inner<M> {
    state: Mutex<State<M>>,
    count: watch::Sender<usize>,
}

struct State<M> {
    sent: Vec<M>,
    failures: VecDeque<StubFailure>,
    always: Option<StubFailure>,
    attempts: usize,
}

impl<M> Clone for RecordingChannel<M> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
        }
    }
}

impl<M> Default for RecordingChannel<M> {
    fn default() -> Self {
        Self {
            inner: Arc::new(Inner {
                state: Mutex::new(State {
                    sent: Vec::new(),
                    failures: VecDeque::new(),
                    always: None,
                    attempts: 0,
                }),
                count: watch::channel(0).0,
            }),
        }
    }
}

impl<M> std::fmt::Debug for RecordingChannel<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self
            .inner
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        f.debug_struct("RecordingChannel")
            .field("sent", &state.sent.len())
            .field("attempts", &state.attempts)
            .finish_non_exhaustive()
    }
}

impl<M: Clone + Send + Sync + 'static> RecordingChannel<M> {
    /// A channel that accepts everything.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, State<M>> {
        self.inner
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Fails the next `times` sends this way (after those already armed).
    pub fn fail_next(&self, times: usize, failure: StubFailure) {
        let mut state = self.lock();
        state.failures.extend(std::iter::repeat_n(failure, times));
    }

    /// Fails every send this way until [`RecordingChannel::recover`].
    pub fn fail_always(&self, failure: StubFailure) {
        self.lock().always = Some(failure);
    }

    /// Stops failing.
    pub fn recover(&self) {
        let mut state = self.lock();
        state.always = None;
        state.failures.clear();
    }

    /// The messages accepted so far, in order.
    pub fn sent(&self) -> Vec<M> {
        self.lock().sent.clone()
    }

    /// Sends attempted, failed ones included.
    pub fn attempts(&self) -> usize {
        self.lock().attempts
    }

    /// Waits until at least `n` messages were accepted; `None` at the deadline.
    pub async fn wait_for(&self, n: usize, timeout: Duration) -> Option<Vec<M>> {
        let mut count = self.inner.count.subscribe();
        let waited = tokio::time::timeout(timeout, count.wait_for(|sent| *sent >= n)).await;
        match waited {
            Ok(Ok(_)) => Some(self.sent()),
            _ => None,
        }
    }

    fn accept(&self, message: &M) -> Result<(), StubFailure> {
        let count = {
            let mut state = self.lock();
            state.attempts += 1;
            if let Some(failure) = state.failures.pop_front().or(state.always) {
                return Err(failure);
            }
            state.sent.push(message.clone());
            state.sent.len()
        };
        self.inner.count.send_replace(count);
        Ok(())
    }
}

#[async_trait]
impl EmailChannel for RecordingChannel<EmailMessage> {
    fn provider(&self) -> &str {
        "recording"
    }

    async fn send_email(&self, email: &EmailMessage) -> Result<SendReceipt, NotificationError> {
        self.accept(email).map_err(|failure| {
            let (code, transient) = match failure {
                StubFailure::Transient => (451, true),
                StubFailure::Permanent => (550, false),
            };
            NotificationError::Smtp {
                code: Some(code),
                transient,
                source: format!("recording channel told to fail with {code}").into(),
            }
        })?;
        Ok(SendReceipt::new("recording", None))
    }
}

fn http_failure(failure: StubFailure) -> NotificationError {
    let status = match failure {
        StubFailure::Transient => 503,
        StubFailure::Permanent => 400,
    };
    NotificationError::HttpStatus {
        provider: "recording",
        status,
        body: "recording channel told to fail".to_owned(),
        retry_after: None,
    }
}

#[async_trait]
impl SmsChannel for RecordingChannel<SmsMessage> {
    fn provider(&self) -> &str {
        "recording"
    }

    async fn send_sms(&self, sms: &SmsMessage) -> Result<SendReceipt, NotificationError> {
        self.accept(sms).map_err(http_failure)?;
        Ok(SendReceipt::new("recording", None))
    }
}

#[async_trait]
impl PushChannel for RecordingChannel<PushMessage> {
    fn provider(&self) -> &str {
        "recording"
    }

    async fn send_push(&self, push: &PushMessage) -> Result<SendReceipt, NotificationError> {
        self.accept(push).map_err(http_failure)?;
        Ok(SendReceipt::new("recording", None))
    }
}
