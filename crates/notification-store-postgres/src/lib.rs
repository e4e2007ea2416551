//! Notification history and message templates in PostgreSQL, with `sqlx`.
//!
//! [`PostgresStore`] implements [`notification_store::NotificationStore`],
//! [`notification_store::TemplateStore`] and [`notification_store::PreferenceStore`],
//! and the suppression list and provider reports
//! ([`notification_store::SuppressionStore`],
//! [`notification_store::DeliveryReportStore`]). The schema is the workspace's
//! `migrations/` directory, embedded as [`MIGRATOR`] and applied by
//! [`PostgresStore::migrate`] (or by `sqlx migrate run`); the queries are plain SQL
//! files in `queries/`, checked at run time (no `DATABASE_URL` needed to build).
//!
//! ```no_run
//! use notification_store_postgres::{PostgresStore, PostgresStoreConfig};
//! use notification_store::{InboxQuery, NotificationStore};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let config = PostgresStoreConfig::new("postgres://postgres@127.0.0.1:5432/test")
//!     .with_schema("notifications");
//! let store = PostgresStore::connect(config).await?;
//! store.migrate().await?;
//!
//! let page = store.list_for_user("user-1", &InboxQuery::default().unread_only()).await?;
//! if let Some(cursor) = page.next_cursor {
//!     let next = InboxQuery::default().unread_only().with_cursor(cursor);
//!     let _second = store.list_for_user("user-1", &next).await?;
//! }
//! # Ok(())
//! # }
//! ```
//!
//! Errors of the store's queries are [`notification_store::StoreError`]s: a
//! unique violation is `Conflict`, a value the database refuses is `InvalidInput`,
//! a connection or pool failure is `Unavailable` (retry later), anything else is
//! `Query`. Setting up (URL, schema name, connecting, migrating) reports
//! [`PostgresStoreError`].
//!
//! The writes of a send (`record`, `begin_attempt`, `record_attempt`) from
//! concurrent senders are committed together ([`GroupCommitConfig`], on by
//! default): one transaction and one WAL flush for many sends, each caller
//! answered only once its write is committed.
//!
//! [`PostgresStore::inbox_listener`] follows the notifications recorded in the
//! store's schema by any process (PostgreSQL `LISTEN`/`NOTIFY`), for pushing
//! them to users as they arrive.
//!
//! See `docs/postgres.md` for the schema, its indexes, TLS modes and per-schema use.

mod config;
mod digests;
mod error;
mod group_commit;
mod inbox_listener;
mod notifications;
mod preferences;
mod reports;
mod rows;
mod store;
mod suppressions;
mod templates;

pub use config::{DEFAULT_DATABASE_URL, PostgresStoreConfig};
pub use error::PostgresStoreError;
pub use group_commit::{GroupCommitConfig, GroupCommitStats};
pub use inbox_listener::{InboxChange, InboxListener, InboxReader, RecordedNotification};
pub use store::{MIGRATOR, PostgresStore};

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use notification_store::{NotificationStore, TemplateStore};

    use super::*;

    #[tokio::test]
    async fn the_store_is_usable_as_shared_trait_objects() {
        fn assert_send_sync<T: Send + Sync + 'static>() {}
        assert_send_sync::<PostgresStore>();
        // No server needed: a lazy pool opens nothing until the first query.
        let store = PostgresStore::connect_lazy(PostgresStoreConfig::default()).unwrap();
        let _notifications: Arc<dyn NotificationStore> = Arc::new(store.clone());
        let _templates: Arc<dyn TemplateStore> = Arc::new(store);
    }

    #[test]
    fn connect_lazy_outside_a_runtime_is_an_error_not_a_panic() {
        let outcome = PostgresStore::connect_lazy(PostgresStoreConfig::default());
        assert!(
            matches!(outcome, Err(PostgresStoreError::NoRuntime)),
            "{outcome:?}"
        );
    }
}
