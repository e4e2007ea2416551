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
//!   traits and their providers (SMTP with lettre; Twilio-style and webhook SMS;
//!   FCM-style and webhook push; a recording stub for tests).
//! * [`template`]: strict handlebars rendering with a compiled-template cache.
//! * [`events`]: topic → notification rules and their payload types.
//! * [`store`]: the [`NotificationStore`](store::NotificationStore) and
//!   [`TemplateStore`](store::TemplateStore) traits, with in-memory
//!   implementations (PostgreSQL ones live in `notification-store-postgres`).
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
//! | `testsuite` | no | `store::testsuite`: the conformance suite every store must pass |
//!
//! TLS (SMTP and HTTPS) is rustls with the ring crypto provider; aws-lc is not built.

pub mod channel;
mod config;
mod error;
pub mod events;
pub mod requests;
mod service;
pub mod store;
pub mod template;

pub use config::{InterruptedSendPolicy, NotificationConfig};
pub use error::NotificationError;
pub use requests::{
    BatchOutcome, Content, EmailBody, EmailRequest, NotificationAction, PushBody, PushRequest,
    Request, SmsRequest, SystemNotificationRequest, TemplateRef, Variables,
};
pub use service::NotificationService;
