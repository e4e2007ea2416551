use std::future::Future;
use std::sync::Arc;

use async_trait::async_trait;
use messaging_model::Message;
use tokio_util::sync::CancellationToken;

use crate::HandlerError;

/// Handles the messages of a subscription.
///
/// Any `async` closure taking a [`Message`] and returning
/// `Result<(), HandlerError>` is a handler; implement the trait on a type for
/// handlers that carry state.
///
/// ```
/// use messaging_core::{HandlerError, MessageHandler};
/// use messaging_model::Message;
///
/// struct Audit;
///
/// #[async_trait::async_trait]
/// impl MessageHandler for Audit {
///     async fn handle(&self, message: Message) -> Result<(), HandlerError> {
///         if message.payload.get("user_id").is_none() {
///             return Err(HandlerError::permanent("user_id missing"));
///         }
///         Ok(())
///     }
/// }
///
/// fn assert_handler(_: impl MessageHandler) {}
/// assert_handler(Audit);
/// assert_handler(|_message: Message| async { Ok::<(), HandlerError>(()) });
/// ```
///
/// A handler that waits on something slow (an HTTP call, a child process) can
/// stop cleanly when the runtime gives up on it: [`cancellation`] returns the
/// token of the delivery being handled, cancelled at the handler timeout
/// ([`SubscribeOptions::handler_timeout`](crate::SubscribeOptions::handler_timeout))
/// and when the subscription shuts down.
#[async_trait]
pub trait MessageHandler: Send + Sync + 'static {
    /// Handles one delivery. `Ok` acknowledges it; an error retries or
    /// dead-letters it (see [`HandlerError`]); a panic counts as a retryable error.
    async fn handle(&self, message: Message) -> Result<(), HandlerError>;
}

#[async_trait]
impl<F, Fut> MessageHandler for F
where
    F: Fn(Message) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), HandlerError>> + Send + 'static,
{
    async fn handle(&self, message: Message) -> Result<(), HandlerError> {
        self(message).await
    }
}

/// One handler shared by several subscriptions (or kept by the caller): wraps
/// the `Arc` so it can be passed wherever a [`MessageHandler`] is taken.
///
/// ```
/// use std::sync::Arc;
/// use messaging_core::{HandlerError, MessageHandler, MessagingService, Shared, SubscribeOptions};
/// use messaging_model::Message;
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let service = MessagingService::in_memory();
/// let audit: Arc<dyn MessageHandler> =
///     Arc::new(|_: Message| async { Ok::<(), HandlerError>(()) });
/// service.subscribe_with("orders.created", SubscribeOptions::new("audit"), Shared(audit.clone())).await?;
/// service.subscribe_with("orders.paid", SubscribeOptions::new("audit"), Shared(audit)).await?;
/// # service.shutdown().await;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Shared(pub Arc<dyn MessageHandler>);

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Shared").finish_non_exhaustive()
    }
}

#[async_trait]
impl MessageHandler for Shared {
    async fn handle(&self, message: Message) -> Result<(), HandlerError> {
        self.0.handle(message).await
    }
}

tokio::task_local! {
    static CANCELLATION: CancellationToken;
}

/// The cancellation token of the delivery being handled, for cooperative work.
///
/// Inside a handler (anywhere in the future the runtime polls for it) this is
/// the token of the current delivery. It is cancelled
///
/// * at the handler timeout ([`SubscribeOptions::handler_timeout`](crate::SubscribeOptions::handler_timeout)
///   or the message's [`HANDLER_TIMEOUT_KEY`](crate::HANDLER_TIMEOUT_KEY)),
///   just before the runtime drops the handler's future, and
/// * when the subscription starts closing ([`MessagingService::shutdown`](crate::MessagingService::shutdown),
///   [`unsubscribe`](crate::MessagingService::unsubscribe)): a handler that then
///   returns an error leaves its message pending for redelivery, without
///   using up a retry.
///
/// A handler races its slow step against [`CancellationToken::cancelled`] to
/// stop early, or hands a clone to work it spawns: the token is a task-local,
/// so a task started with `tokio::spawn` must be given it (call this before
/// spawning). Outside a handler it returns a fresh token that is never
/// cancelled.
///
/// ```
/// use std::time::Duration;
/// use messaging_core::{HandlerError, MessagingService, SubscribeOptions, cancellation};
/// use messaging_model::Message;
///
/// async fn call_provider() -> Result<(), HandlerError> {
///     tokio::time::sleep(Duration::from_secs(3600)).await; // a slow HTTP call
///     Ok(())
/// }
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let service = MessagingService::in_memory();
/// let options = SubscribeOptions::new("mailer").with_handler_timeout(Duration::from_secs(30));
/// service
///     .subscribe_with("orders.placed", options, |_message: Message| async {
///         let token = cancellation();
///         tokio::select! {
///             result = call_provider() => result,
///             () = token.cancelled() => Err(HandlerError::retry("stopped: timed out or shutting down")),
///         }
///     })
///     .await?;
/// service.shutdown().await;
/// # Ok(()) }
/// ```
pub fn cancellation() -> CancellationToken {
    CANCELLATION
        .try_with(CancellationToken::clone)
        .unwrap_or_default()
}

/// Runs `future` with `token` as its [`cancellation`] token.
pub(crate) fn with_cancellation<F: Future>(
    token: CancellationToken,
    future: F,
) -> impl Future<Output = F::Output> {
    CANCELLATION.scope(token, future)
}
