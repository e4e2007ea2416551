//! A transactional outbox on PostgreSQL (sqlx) for the messaging suite.
//!
//! An application that stores a user and then publishes `user.registered`
//! loses the event when it crashes between the two, and announces a user that
//! does not exist when it publishes first and the transaction rolls back. With
//! the outbox the event is a row written **in the same transaction** as the
//! user ([`Outbox::publish`]); a [`Relay`] (inside the application, or the
//! `messaging relay` command) moves committed rows into the messaging backend
//! (`messaging_core::MessagingService`, over Redis or in memory):
//!
//! * a rolled-back transaction publishes nothing; a committed one is published
//!   at least once, with the message id fixed when the row was written, so
//!   consumers deduplicate on `Message::id`;
//! * rows of one ordering key are published in commit order; rows of different
//!   keys (or without one) in no promised order;
//! * several relays may run at once: each key is held by one relay at a time
//!   (session advisory locks), so a row is published twice only when its relay
//!   died (or lost its connection) between the publish and the mark;
//! * `NOTIFY` at commit wakes the relays; they poll as the fallback;
//! * published rows are kept for [`RelayConfig::retention`], then deleted.
//!
//! ```no_run
//! use std::sync::Arc;
//! use messaging_core::MessagingService;
//! use messaging_outbox::{Outbox, Relay, RelayConfig};
//! use serde_json::json;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let pool = sqlx::PgPool::connect("postgres://postgres@127.0.0.1:5432/test").await?;
//! let outbox = Outbox::in_schema("app")?;
//! messaging_outbox::migrate(&pool, &outbox).await?;
//!
//! let mut tx = pool.begin().await?;
//! // … the business write on `tx` …
//! outbox.publish_ordered(&mut tx, "user.registered", "user-42", json!({"user_id": 42})).await?;
//! tx.commit().await?;
//!
//! let service = Arc::new(MessagingService::in_memory());
//! let relay = Relay::new(outbox, pool, service, RelayConfig::default())?.spawn();
//! # relay.stop().await;
//! # Ok(())
//! # }
//! ```
//!
//! See `docs/outbox.md` for a registration handler end to end, the guarantees
//! in full, configuration and retention.

mod error;
mod message;
mod outbox;
mod relay;
mod schema;

pub use error::OutboxError;
pub use message::{MAX_ORDERING_KEY_BYTES, OutboxMessage};
pub use outbox::{Outbox, TABLE};
pub use relay::{Relay, RelayConfig, RelayHandle, RelayStats, Round};
pub use schema::{MIGRATIONS_TABLE, MIGRATOR, OutboxStats, migrate};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_types_are_send_and_sync() {
        fn assert_send_sync<T: Send + Sync + 'static>() {}
        assert_send_sync::<Outbox>();
        assert_send_sync::<OutboxMessage>();
        assert_send_sync::<Relay>();
        assert_send_sync::<RelayHandle>();
        assert_send_sync::<OutboxError>();
    }
}
