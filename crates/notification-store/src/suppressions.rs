//! The suppression list: addresses a channel no longer sends to, after a hard
//! bounce, a complaint, repeated soft bounces, or by hand.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use messaging_model::NotificationKind;

use crate::StoreError;

/// Why an address is suppressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SuppressionReason {
    /// The provider reported a permanent refusal (no such mailbox, …).
    HardBounce,
    /// The recipient reported a message as spam.
    Complaint,
    /// Too many temporary refusals in a window ([`SoftBouncePolicy`]).
    SoftBounces,
    /// Added by an operator.
    Manual,
}

impl SuppressionReason {
    /// Every reason.
    pub const ALL: [Self; 4] = [
        Self::HardBounce,
        Self::Complaint,
        Self::SoftBounces,
        Self::Manual,
    ];

    /// The snake_case name, as stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::HardBounce => "hard_bounce",
            Self::Complaint => "complaint",
            Self::SoftBounces => "soft_bounces",
            Self::Manual => "manual",
        }
    }

    /// The reason named `name` ([`as_str`](Self::as_str)'s output), if any.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|reason| reason.as_str() == name)
    }
}

/// The form an address is kept and compared in: trimmed, and for email
/// lowercased (mailbox names are case-insensitive in practice, and providers
/// report them in whatever case they were given).
///
/// ```
/// use messaging_model::NotificationKind;
/// use notification_store::normalize_address;
/// assert_eq!(normalize_address(NotificationKind::Email, " Ann@Example.COM "), "ann@example.com");
/// assert_eq!(normalize_address(NotificationKind::Sms, "+15550100"), "+15550100");
/// ```
pub fn normalize_address(channel: NotificationKind, address: &str) -> String {
    let trimmed = address.trim();
    match channel {
        NotificationKind::Email => trimmed.to_lowercase(),
        _ => trimmed.to_owned(),
    }
}

/// One suppressed address of one channel.
///
/// ```
/// use messaging_model::NotificationKind;
/// use notification_store::{Suppression, SuppressionReason};
/// let s = Suppression::new(NotificationKind::Email, "Ann@Example.com", SuppressionReason::HardBounce, chrono::Utc::now());
/// assert_eq!(s.address, "ann@example.com");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Suppression {
    /// The channel it applies to (an address suppressed for email says
    /// nothing of the same person's phone).
    pub channel: NotificationKind,
    /// The address, normalised ([`normalize_address`]).
    pub address: String,
    /// Why.
    pub reason: SuppressionReason,
    /// The provider's reason, or an operator's note.
    pub detail: Option<String>,
    /// When it was suppressed (to the microsecond).
    pub created_at: DateTime<Utc>,
}

impl Suppression {
    /// A suppression of `address` (normalised here) for `channel`.
    pub fn new(
        channel: NotificationKind,
        address: &str,
        reason: SuppressionReason,
        at: DateTime<Utc>,
    ) -> Self {
        Self {
            channel,
            address: normalize_address(channel, address),
            reason,
            detail: None,
            created_at: DateTime::from_timestamp_micros(at.timestamp_micros()).unwrap_or(at),
        }
    }

    /// Sets the detail.
    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }
}

/// When soft bounces suppress an address: `threshold` of them within `window`.
///
/// ```
/// use notification_store::SoftBouncePolicy;
/// let policy = SoftBouncePolicy::default();
/// assert_eq!((policy.threshold, policy.window.as_secs()), (3, 7 * 24 * 3600));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct SoftBouncePolicy {
    /// How many soft bounces suppress (at least 1).
    pub threshold: u32,
    /// Over how long a time, counted back from the latest.
    pub window: std::time::Duration,
}

impl Default for SoftBouncePolicy {
    /// 3 soft bounces in 7 days.
    fn default() -> Self {
        Self {
            threshold: 3,
            window: std::time::Duration::from_secs(7 * 24 * 3600),
        }
    }
}

impl SoftBouncePolicy {
    /// `threshold` soft bounces (at least 1) within `window`.
    pub fn new(threshold: u32, window: std::time::Duration) -> Self {
        Self {
            threshold: threshold.max(1),
            window,
        }
    }

    /// The start of the window ending at `at` (inclusive).
    pub fn window_start(&self, at: DateTime<Utc>) -> DateTime<Utc> {
        chrono::TimeDelta::from_std(self.window)
            .ok()
            .and_then(|window| at.checked_sub_signed(window))
            .unwrap_or(DateTime::<Utc>::MIN_UTC)
    }
}

/// The suppression list, per channel.
///
/// Addresses are normalised by the store ([`normalize_address`]) on every call,
/// so callers may pass them as providers report them.
#[async_trait]
pub trait SuppressionStore: Send + Sync + 'static {
    /// Suppresses an address. An address already suppressed keeps its first
    /// suppression (reason, detail and time); the answer is the one in force.
    async fn suppress(&self, suppression: &Suppression) -> Result<Suppression, StoreError>;

    /// The suppression of `address` for `channel`, if any.
    async fn find_suppression(
        &self,
        channel: NotificationKind,
        address: &str,
    ) -> Result<Option<Suppression>, StoreError>;

    /// Records a soft bounce of `address` at `at`; when it makes
    /// `policy.threshold` soft bounces within `policy.window` (ending at `at`),
    /// suppresses the address with [`SuppressionReason::SoftBounces`]. Returns
    /// the suppression in force afterwards, if any (an address already
    /// suppressed stays as it was).
    async fn record_soft_bounce(
        &self,
        channel: NotificationKind,
        address: &str,
        at: DateTime<Utc>,
        policy: SoftBouncePolicy,
    ) -> Result<Option<Suppression>, StoreError>;

    /// Every suppression, of one channel or all, ordered by channel then address.
    async fn list_suppressions(
        &self,
        channel: Option<NotificationKind>,
    ) -> Result<Vec<Suppression>, StoreError>;

    /// Lifts the suppression of `address` for `channel` and forgets its soft
    /// bounces; true when there was one.
    async fn remove_suppression(
        &self,
        channel: NotificationKind,
        address: &str,
    ) -> Result<bool, StoreError>;
}
