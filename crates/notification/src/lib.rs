//! Notifications for the messaging suite: email over SMTP, SMS and push through
//! HTTP providers, in-app (system) notifications; handlebars templates; event
//! listeners that turn published events into notifications; and the stores
//! that keep their history.
//!
//! * [`NotificationService`]: `send` (any request), `send_email`, `send_email_with_template`,
//!   `send_sms`, `send_sms_with_template`, `send_push`,
//!   `send_push_with_template`, `send_system_notification`,
//!   `send_batch`, `send_batch_email`, `send_batch_sms`, `create_template`,
//!   `listen_to_events`.
//! * [`channel`]: the [`EmailChannel`](channel::EmailChannel),
//!   [`SmsChannel`](channel::SmsChannel) and [`PushChannel`](channel::PushChannel)
//!   traits and their providers (SMTP with lettre, feature `smtp`; Twilio-style
//!   and webhook SMS, FCM-style and webhook push, feature `http`; a recording
//!   stub for tests, always).
//! * [`template`]: strict handlebars rendering with a compiled-template cache.
//! * [`events`]: topic → notification rules and their payload types.
//! * [`store`]: the [`NotificationStore`](store::NotificationStore) and
//!   [`TemplateStore`](store::TemplateStore) traits, with in-memory
//!   implementations: the `notification-store` crate, re-exported (PostgreSQL
//!   ones live in `notification-store-postgres`, which needs only that crate).
//!
//! Every send records a [`messaging_model::Notification`]: `pending`, then
//! `sent` or `failed`. Errors are one enum, [`NotificationError`], that says
//! whether a retry may help ([`NotificationError::is_transient`]).
//!
//! ```
//! use std::sync::Arc;
//! use messaging_model::{MessageTemplate, TemplateKind};
//! use notification::channel::{RecordingChannel, SmsMessage};
//! use notification::{NotificationService, SmsRequest, TemplateRef};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), notification::NotificationError> {
//! let sms = RecordingChannel::<SmsMessage>::new();
//! let service = NotificationService::in_memory().with_sms(Arc::new(sms.clone()));
//! service
//!     .create_template(
//!         MessageTemplate::new("login_code", TemplateKind::Sms, "Your code is {{code}}").with_variables(["code"]),
//!     )
//!     .await?;
//! service
//!     .send_sms_with_template(SmsRequest::template(
//!         "user-1",
//!         "+14155550100",
//!         TemplateRef::new("login_code").with_variable("code", "493021"),
//!     )?)
//!     .await?;
//! assert_eq!(sms.sent()[0].text, "Your code is 493021");
//! # Ok(()) }
//! ```
//!
//! ## Features
//! | feature | default | what it adds |
//! |---|---|---|
//! | `smtp` | yes | `channel::SmtpEmailChannel` and its connection pool (lettre) |
//! | `http` | yes | the HTTP providers: `channel::TwilioSmsProvider`, `channel::WebhookSmsProvider`, `channel::FcmPushProvider`, `channel::WebhookPushProvider` (reqwest, rustls) |
//! | `testsuite` | no | `store::testsuite`: the conformance suite every store must pass |
//!
//! With `default-features = false` the crate builds neither lettre nor reqwest:
//! in-app (system) notifications, templates, event listeners, the stores and
//! [`RecordingChannel`](channel::RecordingChannel) remain, and an application
//! may plug in its own [`EmailChannel`](channel::EmailChannel),
//! [`SmsChannel`](channel::SmsChannel) or [`PushChannel`](channel::PushChannel).
//! Email addresses are checked the same way with or without `smtp`.
//!
//! TLS (SMTP and HTTPS) is rustls with the ring crypto provider; aws-lc is not built.

pub mod channel;
mod config;
pub mod deferred;
pub mod digest;
mod error;
pub mod events;
pub mod preferences;
pub mod requests;
mod service;
pub mod template;
pub mod unsubscribe;

/// Where notifications and templates are kept: the `notification-store` crate.
pub use notification_store as store;
/// The store conformance suite's macros, also at their old paths.
#[cfg(feature = "testsuite")]
pub use notification_store::{
    notification_store_conformance_tests, store_conformance_tests, template_store_conformance_tests,
};

pub use config::{InterruptedSendPolicy, NotificationConfig};
pub use error::NotificationError;
pub use requests::{
    BatchOutcome, Content, EmailBody, EmailRequest, NotificationAction, PushBody, PushRequest,
    Request, SmsRequest, SystemNotificationRequest, TemplateRef, Variables,
};
pub use service::NotificationService;
