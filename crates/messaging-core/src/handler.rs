use std::future::Future;
use std::sync::Arc;

use async_trait::async_trait;
use messaging_model::Message;

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

/// A handler shared between subscriptions.
pub type SharedHandler = Arc<dyn MessageHandler>;
