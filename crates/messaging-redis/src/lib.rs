//! The Redis Streams backend of the messaging service.
//!
//! [`RedisBackend`] implements [`messaging_core::MessageBackend`] on Redis
//! Streams, so a [`messaging_core::MessagingService`] built on it gets consumer
//! groups shared across processes, delivery that survives a crash of any
//! consumer, delayed messages and retries kept in Redis, and a dead-letter queue
//! per topic.
//!
//! * Publishing is `XADD` (a pipeline of them for a batch); consuming is
//!   `XREADGROUP … BLOCK` and a fenced `XACK`.
//! * A consumer restarted under the same name first drains its own pending
//!   entries; entries idle past the visibility timeout are taken over with
//!   `XAUTOCLAIM`.
//! * Settling (ack, retry, dead-letter, lease extension) is fenced by a Lua
//!   script that checks the owner and delivery count in the pending list, so a
//!   consumer whose delivery was reclaimed changes nothing
//!   ([`messaging_core::Settlement::LostOwnership`]).
//! * Delayed messages and retries wait in a sorted set per topic and are moved to
//!   the stream by one Lua script using the server's clock: never early, never
//!   twice, never lost, however many processes promote at once.
//! * Entries that cannot be decoded are moved to the dead-letter queue.
//!
//! The key layout, the guarantees and the recommended Redis settings are in
//! `docs/redis.md`; the benchmark against a plain `redis` loop in
//! `docs/benchmarks.md`.
//!
//! ## Features
//! | feature | default | what it adds |
//! |---|---|---|
//! | `tls` | yes | `rediss://` URLs (rustls with the ring provider) |
//!
//! ```no_run
//! use std::sync::Arc;
//! use messaging_core::{HandlerError, MessagingService};
//! use messaging_model::Message;
//! use messaging_redis::{RedisBackend, RedisBackendConfig};
//! use serde_json::json;
//!
//! # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let config = RedisBackendConfig::new("redis://127.0.0.1:6379").with_key_prefix("shop");
//! let backend = RedisBackend::connect(config).await?;
//! let service = MessagingService::new(Arc::new(backend));
//!
//! service
//!     .subscribe("orders.placed", |message: Message| async move {
//!         println!("order {}", message.payload["order"]);
//!         Ok::<(), HandlerError>(())
//!     })
//!     .await?;
//! service.publish("orders.placed", json!({"order": 1})).await?;
//!
//! // `eviction` or missing persistence shows up here.
//! for warning in service.health().await?.warnings {
//!     eprintln!("redis: {warning}");
//! }
//! service.shutdown().await;
//! # Ok(()) }
//! ```

mod ack_queue;
mod acks;
mod admin;
mod backend;
mod cancel;
mod codec;
mod config;
mod connection;
mod dead_letters;
mod due_schedule;
mod error;
mod hot_path;
mod inner;
mod keys;
mod limits;
mod maintenance;
mod pause;
mod pool;
#[cfg(test)]
mod properties;
mod reading;
mod schedules;
mod scripts;
mod unique;

pub use backend::RedisBackend;
pub use config::RedisBackendConfig;
pub use config::ReplicaAcks;
pub use dead_letters::{DeadLetterPage, UndecodableDeadLetter};
pub use error::NotReplicated;
pub use messaging_core::{DEFAULT_TOPIC_CAP, Retention};
