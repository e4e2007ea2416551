//! Where notifications and templates are kept.
//!
//! This crate holds the storage contract of the `notification` crate and nothing
//! that sends: no SMTP, no HTTP, no template engine. A store implementation (like
//! `notification-store-postgres`) depends on it alone; `notification` re-exports
//! it as `notification::store`.
//!
//! * [`NotificationStore`]: the history of notifications, their delivery attempts
//!   and each user's inbox; [`TemplateStore`]: templates by name and locale;
//!   [`PreferenceStore`]: each user's [`Preferences`] (opt-outs by channel and
//!   category, quiet hours) and the opaque subscriber id of unsubscribe links.
//! * [`StoreError`]: what a store reports, classified (`is_not_found`,
//!   `is_conflict`, `is_transient`).
//! * The inbox: [`InboxQuery`], [`InboxPage`], [`InboxCursor`].
//! * [`SuppressionStore`]: the addresses each channel no longer sends to
//!   ([`Suppression`], [`SoftBouncePolicy`]); [`DeliveryReportStore`]: what
//!   providers report after accepting a message, matched by provider message id.
//! * [`StatusUpdate`]: how a delivery ended, for
//!   [`NotificationStore::update_status`].
//! * [`InMemoryNotificationStore`], [`InMemoryTemplateStore`],
//!   [`InMemoryPreferenceStore`]: stores in this
//!   process, for tests, demos and single-process services.
//! * `testsuite` (feature): the conformance suite every store must pass, stamped
//!   out by `store_conformance_tests!` and its two halves.
//!
//! The data types stored ([`Notification`](messaging_model::Notification),
//! [`DeliveryAttempt`](messaging_model::DeliveryAttempt),
//! [`MessageTemplate`](messaging_model::MessageTemplate) and their enums) live in
//! `messaging-model`.
//!
//! Record a notification, then read the user's inbox:
//!
//! ```
//! use messaging_model::{Notification, NotificationKind};
//! use notification_store::{InMemoryNotificationStore, InboxQuery, NotificationStore};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), notification_store::StoreError> {
//! let store = InMemoryNotificationStore::new();
//! let welcome = Notification::new("user-1", NotificationKind::System, "Welcome", "Glad you're here");
//! store.record(&welcome).await?;
//!
//! let page = store.list_for_user("user-1", &InboxQuery::default().unread_only()).await?;
//! assert_eq!(page.items[0].title, "Welcome");
//! assert!(page.next_cursor.is_none());
//!
//! store.mark_read("user-1", welcome.id).await?;
//! assert_eq!(store.unread_count("user-1").await?, 0);
//! // Another user's notification is not found, never revealed.
//! assert!(store.get_notification("user-2", welcome.id).await.unwrap_err().is_not_found());
//! # Ok(()) }
//! ```
//!
//! ## Features
//! | feature | default | what it adds |
//! |---|---|---|
//! | `testsuite` | no | `testsuite`: the conformance suite every store must pass, and its macros |

mod digests;
mod error;
mod inbox;
mod memory;
mod notifications;
mod preferences;
mod reports;
mod status;
mod suppressions;
mod templates;
#[cfg(feature = "testsuite")]
pub mod testsuite;

pub use digests::{DigestAppend, DigestStore, DigestWindow};
pub use error::{BoxError, StoreError};
pub use inbox::{DEFAULT_PAGE_SIZE, InboxCursor, InboxPage, InboxQuery, MAX_PAGE_SIZE};
pub use memory::InMemorySuppressionStore;
pub use memory::{
    InMemoryDigestStore, InMemoryNotificationStore, InMemoryPreferenceStore, InMemoryTemplateStore,
};
pub use notifications::{NotificationStore, check_notification};
pub use preferences::{
    OptOut, PreferenceChange, PreferenceStore, Preferences, QuietHours, check_user_id,
};
pub use reports::{DeliveryReportStore, check_delivery_report};
pub use status::StatusUpdate;
pub use suppressions::{
    SoftBouncePolicy, Suppression, SuppressionReason, SuppressionStore, normalize_address,
};
pub use templates::TemplateStore;
