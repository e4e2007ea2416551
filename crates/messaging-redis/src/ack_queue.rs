//! The queue between settling callers and the ack writer task: each request
//! is one receipt and where its outcome goes. A leaf module, so the backend's
//! state can hold the sender without depending on the task that drains it.

use messaging_core::{BackendError, Receipt};
use tokio::sync::{mpsc, oneshot};

/// One ack waiting for its batch.
pub(crate) struct AckRequest {
    pub(crate) receipt: Receipt,
    pub(crate) done: oneshot::Sender<Result<bool, BackendError>>,
}

/// Where callers send their acks.
pub(crate) type AckSender = mpsc::UnboundedSender<AckRequest>;

/// A new queue.
pub(crate) fn channel() -> (AckSender, mpsc::UnboundedReceiver<AckRequest>) {
    mpsc::unbounded_channel()
}
