//! Notifications: channels, templates, event listeners, and the stores that keep
//! their history.

pub mod store;
