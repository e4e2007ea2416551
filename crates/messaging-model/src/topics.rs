//! The predefined topics of the suite.
//!
//! ```
//! use messaging_model::topics;
//! assert!(topics::ALL.contains(&topics::WALLET_RECHARGED));
//! for topic in topics::ALL {
//!     messaging_model::validate_topic(topic).unwrap();
//! }
//! ```

/// A user finished registration; the notification listener sends the welcome email.
pub const USER_REGISTERED: &str = "user.registered";
/// A user logged in.
pub const USER_LOGGED_IN: &str = "user.logged_in";
/// A user's profile changed.
pub const USER_UPDATED: &str = "user.updated";
/// A wallet was recharged; the notification listener sends a recharge notice.
pub const WALLET_RECHARGED: &str = "wallet.recharged";
/// Credit was consumed from a wallet.
pub const WALLET_CONSUMED: &str = "wallet.consumed";
/// A user asked to withdraw from a wallet.
pub const WALLET_WITHDRAW_REQUEST: &str = "wallet.withdraw_request";
/// Content was created.
pub const CONTENT_CREATED: &str = "content.created";
/// Content was updated.
pub const CONTENT_UPDATED: &str = "content.updated";
/// Content was deleted.
pub const CONTENT_DELETED: &str = "content.deleted";
/// Content was reviewed.
pub const CONTENT_REVIEWED: &str = "content.reviewed";
/// A user behaviour was recorded for recommendations.
pub const RECOMMENDATION_BEHAVIOR_RECORDED: &str = "recommendation.behavior_recorded";
/// Recommendations should be recomputed.
pub const RECOMMENDATION_REFRESH: &str = "recommendation.refresh";
/// A request to send an email notification.
pub const NOTIFICATION_EMAIL: &str = "notification.email";
/// A request to send an SMS notification.
pub const NOTIFICATION_SMS: &str = "notification.sms";
/// A request to send a push notification.
pub const NOTIFICATION_PUSH: &str = "notification.push";

/// Every predefined topic.
pub const ALL: [&str; 15] = [
    USER_REGISTERED,
    USER_LOGGED_IN,
    USER_UPDATED,
    WALLET_RECHARGED,
    WALLET_CONSUMED,
    WALLET_WITHDRAW_REQUEST,
    CONTENT_CREATED,
    CONTENT_UPDATED,
    CONTENT_DELETED,
    CONTENT_REVIEWED,
    RECOMMENDATION_BEHAVIOR_RECORDED,
    RECOMMENDATION_REFRESH,
    NOTIFICATION_EMAIL,
    NOTIFICATION_SMS,
    NOTIFICATION_PUSH,
];
