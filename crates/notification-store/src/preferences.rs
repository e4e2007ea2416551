//! Per-user notification preferences: opt-outs by channel and category, a
//! global opt-out, and quiet hours; the [`PreferenceStore`] that keeps them.
//!
//! What a preference *means* for a send (critical categories bypass opt-outs
//! and quiet hours, quiet hours delay rather than drop) is decided by the
//! `notification` crate; the store only keeps the settings, per user.

use async_trait::async_trait;
use chrono::{DateTime, NaiveTime, Utc};
use messaging_model::NotificationKind;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::StoreError;

/// One opt-out: a category on a channel, a category on every channel, a whole
/// channel, or everything.
///
/// ```
/// use messaging_model::NotificationKind;
/// use notification_store::OptOut;
/// let marketing_email = OptOut::category("marketing").on(NotificationKind::Email);
/// assert!(marketing_email.covers(Some("marketing"), NotificationKind::Email));
/// assert!(!marketing_email.covers(Some("marketing"), NotificationKind::Sms));
/// assert!(OptOut::everything().covers(None, NotificationKind::Push));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub struct OptOut {
    /// The category opted out of; `None`: every category (and uncategorised).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    /// The channel; `None`: every channel.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<NotificationKind>,
}

impl OptOut {
    /// The global opt-out: every category on every channel.
    pub fn everything() -> Self {
        Self {
            category: None,
            channel: None,
        }
    }

    /// One category on every channel (narrow it with [`on`](Self::on)).
    pub fn category(category: impl Into<String>) -> Self {
        Self {
            category: Some(category.into()),
            channel: None,
        }
    }

    /// Every category on one channel.
    pub fn channel(channel: NotificationKind) -> Self {
        Self {
            category: None,
            channel: Some(channel),
        }
    }

    /// The same opt-out, on `channel` only.
    pub fn on(mut self, channel: NotificationKind) -> Self {
        self.channel = Some(channel);
        self
    }

    /// Whether a notification of `category` on `channel` falls under it.
    pub fn covers(&self, category: Option<&str>, channel: NotificationKind) -> bool {
        let category_matches = match &self.category {
            None => true,
            Some(own) => category == Some(own.as_str()),
        };
        category_matches && self.channel.is_none_or(|own| own == channel)
    }

    /// What it says, for a skip reason: `"opted out of marketing by email"`.
    pub fn describe(&self) -> String {
        let what = self.category.as_deref().unwrap_or("everything");
        match self.channel {
            Some(channel) => format!("opted out of {what} by {}", channel.as_str()),
            None => format!("opted out of {what}"),
        }
    }

    fn sort_key(&self) -> (Option<&str>, Option<&'static str>) {
        (
            self.category.as_deref(),
            self.channel.map(NotificationKind::as_str),
        )
    }
}

/// A daily window, in the user's time zone, during which non-critical
/// notifications wait. `start` is inclusive, `end` exclusive; `start > end`
/// wraps midnight (22:00-07:00), `start == end` is empty.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct QuietHours {
    /// When the window opens, local time.
    pub start: NaiveTime,
    /// When it closes, local time.
    pub end: NaiveTime,
    /// The IANA time zone of `start` and `end` (`Europe/Berlin`).
    pub time_zone: chrono_tz::Tz,
}

impl QuietHours {
    /// A window from `start` to `end` in `time_zone`.
    pub fn new(start: NaiveTime, end: NaiveTime, time_zone: chrono_tz::Tz) -> Self {
        Self {
            start,
            end,
            time_zone,
        }
    }
}

/// A user's preferences. The default (and what a user never seen has): no
/// opt-out, no quiet hours.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Preferences {
    /// The user.
    pub user_id: String,
    /// What the user opted out of, sorted, without repeats.
    #[serde(default)]
    pub opt_outs: Vec<OptOut>,
    /// The user's quiet hours, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quiet_hours: Option<QuietHours>,
    /// When the store last changed them; `None` for defaults never stored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<DateTime<Utc>>,
}

impl Preferences {
    /// The defaults of `user_id`.
    pub fn new(user_id: impl Into<String>) -> Self {
        Self {
            user_id: user_id.into(),
            ..Self::default()
        }
    }

    /// The first opt-out that covers a notification of `category` on
    /// `channel`; `None`: the user accepts it.
    ///
    /// ```
    /// use messaging_model::NotificationKind;
    /// use notification_store::{OptOut, PreferenceChange, Preferences};
    /// let mut prefs = Preferences::new("u1");
    /// prefs.apply(&PreferenceChange::opt_out(OptOut::category("marketing")));
    /// assert!(prefs.opted_out(Some("marketing"), NotificationKind::Email).is_some());
    /// assert!(prefs.opted_out(Some("billing"), NotificationKind::Email).is_none());
    /// ```
    pub fn opted_out(&self, category: Option<&str>, channel: NotificationKind) -> Option<&OptOut> {
        self.opt_outs
            .iter()
            .find(|opt_out| opt_out.covers(category, channel))
    }

    /// Applies one change (what every store does under its lock, so that two
    /// concurrent changes never lose one another).
    pub fn apply(&mut self, change: &PreferenceChange) {
        match change {
            PreferenceChange::OptOut(opt_out) => {
                if !self.opt_outs.contains(opt_out) {
                    self.opt_outs.push(opt_out.clone());
                    self.opt_outs
                        .sort_by(|a, b| a.sort_key().cmp(&b.sort_key()));
                }
            }
            PreferenceChange::OptIn(opt_out) => self.opt_outs.retain(|own| own != opt_out),
            PreferenceChange::QuietHours(hours) => self.quiet_hours = hours.clone(),
        }
    }
}

/// One change to a user's preferences.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PreferenceChange {
    /// Adds the opt-out (a no-op when present).
    OptOut(OptOut),
    /// Removes exactly this opt-out (a no-op when absent): opting back in to
    /// marketing email does not undo a global opt-out.
    OptIn(OptOut),
    /// Sets (`Some`) or clears (`None`) the quiet hours.
    QuietHours(Option<QuietHours>),
}

impl PreferenceChange {
    /// [`PreferenceChange::OptOut`].
    pub fn opt_out(opt_out: OptOut) -> Self {
        Self::OptOut(opt_out)
    }

    /// [`PreferenceChange::OptIn`].
    pub fn opt_in(opt_out: OptOut) -> Self {
        Self::OptIn(opt_out)
    }
}

/// Where users' preferences are kept.
///
/// Every call names one user and touches only that user's preferences; there is
/// no call that lists or changes several users. A user never stored reads as
/// [`Preferences::new`]. The store conformance suite (`testsuite` feature,
/// `preference_store_conformance_tests!`) pins down the contract.
#[async_trait]
pub trait PreferenceStore: Send + Sync + 'static {
    /// The user's preferences (the defaults when none are stored).
    /// [`StoreError::InvalidInput`] for an empty user id.
    async fn get_preferences(&self, user_id: &str) -> Result<Preferences, StoreError>;

    /// Applies `changes` in order, atomically (two concurrent updates of one
    /// user both take effect), and returns the result with `updated_at` set.
    async fn update_preferences(
        &self,
        user_id: &str,
        changes: &[PreferenceChange],
    ) -> Result<Preferences, StoreError>;

    /// The user's subscriber id: an opaque random id, created on first use and
    /// stable afterwards, that links carry instead of the user id (one-click
    /// unsubscribe tokens).
    async fn subscriber_id(&self, user_id: &str) -> Result<Uuid, StoreError>;

    /// The user a subscriber id belongs to, if any.
    async fn user_of_subscriber(&self, subscriber_id: Uuid) -> Result<Option<String>, StoreError>;
}

/// Refuses an empty (or blank) user id.
pub fn check_user_id(user_id: &str) -> Result<(), StoreError> {
    if user_id.trim().is_empty() {
        return Err(StoreError::InvalidInput {
            reason: "the user id is empty".into(),
        });
    }
    Ok(())
}
