//! The store conformance suite: every [`super::NotificationStore`] and
//! [`super::TemplateStore`] implementation must pass it.
//!
//! (Being written: see the notification-store-postgres issue.)
