//! The messaging service of the suite: publish (single, batch, delayed), subscribe
//! with a handler under a consumer group, and reliable delivery on top of any
//! [`Backend`].
//!
//! * [`MessagingService`]: the API applications use.
//! * [`MessageBackend`] (the hot path: publish, read, reclaim, settle) and
//!   [`BackendAdmin`] (topics, figures, health, dead letters): what a backend
//!   implements, together a [`Backend`]; [`InMemoryBackend`] is the embedded
//!   default, `messaging-redis` the production one.
//! * The subscription runtime behind [`MessagingService::subscribe`]: bounded
//!   concurrency, ack only after success, panics caught, retries with
//!   [`RetryPolicy`] backoff, then the dead-letter queue; crashed consumers'
//!   messages reclaimed after the visibility timeout.
//!
//! Delivery is at least once: a message can be handled twice (a consumer
//! that stalls past its visibility timeout, a crash between the handler's side
//! effect and the ack), so handlers deduplicate on [`messaging_model::Message::id`]
//! where it matters. A message accepted by `publish` is never dropped: it is
//! handled, retried, or kept in the dead-letter queue (unless the backend was
//! given the lossy [`Retention::DropUnreadAfter`]). A topic that reaches its cap
//! refuses further publishes with [`BackendError::QueueFull`] instead.
//!
//! ## Features
//! | feature | default | what it adds |
//! |---|---|---|
//! | `testsuite` | no | [`testsuite`]: the conformance suite every backend must pass |
//!
//! ```
//! use std::time::Duration;
//! use messaging_core::{HandlerError, MessagingService, RetryPolicy, SubscribeOptions};
//! use messaging_model::Message;
//! use serde_json::json;
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let service = MessagingService::in_memory();
//! let options = SubscribeOptions::new("mailer")
//!     .with_retry(RetryPolicy::exponential(Duration::from_millis(10), Duration::from_millis(50)));
//! service
//!     .subscribe_with("orders.placed", options, |_message: Message| async {
//!         Err::<(), _>(HandlerError::permanent("no mail server"))
//!     })
//!     .await?;
//! service.publish("orders.placed", json!({"order": 1})).await?;
//! // The failure lands in the dead-letter queue, where it can be inspected and replayed.
//! let dead = loop {
//!     let dead = service.dead_letters("orders.placed", 10).await?;
//!     if !dead.is_empty() { break dead; }
//!     tokio::task::yield_now().await;
//! };
//! assert_eq!(dead[0].error, "permanent failure: no mail server");
//! service.shutdown().await;
//! # Ok(()) }
//! ```

mod backend;
mod error;
mod handler;
pub mod limit;
mod memory;
pub mod partition;
pub mod priority;
mod retention;
mod retry;
pub mod schedule;
mod service;
mod subscription;
#[cfg(feature = "testsuite")]
pub mod testsuite;
mod trace_context;
pub mod unique;

pub use backend::{
    Backend, BackendAdmin, BackendHealth, CancelBackend, ConsumerId, DeadLetter, Delivery,
    GroupStats, MessageBackend, PauseBackend, PauseState, RESERVED_METADATA_KEYS, RETRY_AT_KEY,
    RETRY_DELAY_MS_KEY, ReadFrom, ReadOptions, Receipt, Settlement, StartFrom, TARGET_GROUP_KEY,
    TopicStats,
};
pub use error::{BackendError, BoxError, HandlerError, MessagingError};
pub use handler::{MessageHandler, Shared, cancellation};
pub use memory::InMemoryBackend;
pub use partition::{PartitionRegistry, Partitioned};
pub use retention::{DEFAULT_TOPIC_CAP, Retention};
pub use retry::RetryPolicy;
pub use service::{HealthReport, MessagingService};
pub use subscription::{HANDLER_TIMEOUT_KEY, OnExpired, SubscribeOptions};
/// The token type of [`cancellation`], re-exported so handlers need not name
/// `tokio-util` themselves.
pub use tokio_util::sync::CancellationToken;
pub use trace_context::{TRACEPARENT_KEY, TraceContext};

/// The README's examples, compiled as doc tests so they cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
struct ReadmeDoctests;

/// The examples of `docs/flow-control.md`, compiled as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../../../docs/flow-control.md")]
struct FlowControlDoctests;
