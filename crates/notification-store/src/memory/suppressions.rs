//! [`InMemorySuppressionStore`].

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use messaging_model::NotificationKind;

use super::micros;
use crate::{
    SoftBouncePolicy, StoreError, Suppression, SuppressionReason, SuppressionStore,
    normalize_address,
};

#[derive(Default)]
struct SuppressionState {
    /// By (channel name, normalised address): ordered as `list_suppressions` answers.
    suppressed: BTreeMap<(&'static str, String), Suppression>,
    soft_bounces: HashMap<(&'static str, String), Vec<DateTime<Utc>>>,
}

/// The suppression list kept in memory, shared by every clone.
///
/// ```
/// use messaging_model::NotificationKind;
/// use notification_store::{InMemorySuppressionStore, Suppression, SuppressionReason, SuppressionStore};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let store = InMemorySuppressionStore::new();
/// let s = Suppression::new(NotificationKind::Email, "ann@example.com", SuppressionReason::HardBounce, chrono::Utc::now());
/// store.suppress(&s).await.unwrap();
/// assert!(store.find_suppression(NotificationKind::Email, "ANN@example.com").await.unwrap().is_some());
/// assert!(store.find_suppression(NotificationKind::Sms, "ann@example.com").await.unwrap().is_none());
/// # }
/// ```
#[derive(Clone, Default)]
pub struct InMemorySuppressionStore {
    state: Arc<Mutex<SuppressionState>>,
}

impl std::fmt::Debug for InMemorySuppressionStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InMemorySuppressionStore")
            .field("suppressed", &self.lock().suppressed.len())
            .finish()
    }
}

impl InMemorySuppressionStore {
    /// An empty list.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, SuppressionState> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

fn key(channel: NotificationKind, address: &str) -> (&'static str, String) {
    (channel.as_str(), normalize_address(channel, address))
}

#[async_trait]
impl SuppressionStore for InMemorySuppressionStore {
    async fn suppress(&self, suppression: &Suppression) -> Result<Suppression, StoreError> {
        let mut kept = suppression.clone();
        kept.address = normalize_address(kept.channel, &kept.address);
        kept.created_at = micros(kept.created_at);
        let mut state = self.lock();
        Ok(state
            .suppressed
            .entry(key(kept.channel, &kept.address))
            .or_insert(kept)
            .clone())
    }

    async fn find_suppression(
        &self,
        channel: NotificationKind,
        address: &str,
    ) -> Result<Option<Suppression>, StoreError> {
        Ok(self.lock().suppressed.get(&key(channel, address)).cloned())
    }

    async fn record_soft_bounce(
        &self,
        channel: NotificationKind,
        address: &str,
        at: DateTime<Utc>,
        policy: SoftBouncePolicy,
    ) -> Result<Option<Suppression>, StoreError> {
        let at = micros(at);
        let key = key(channel, address);
        let mut state = self.lock();
        if let Some(existing) = state.suppressed.get(&key) {
            return Ok(Some(existing.clone()));
        }
        let start = policy.window_start(at);
        let bounces = state.soft_bounces.entry(key.clone()).or_default();
        bounces.retain(|t| *t >= start);
        bounces.push(at);
        let in_window = bounces.iter().filter(|t| **t >= start && **t <= at).count();
        if in_window < usize::try_from(policy.threshold.max(1)).unwrap_or(usize::MAX) {
            return Ok(None);
        }
        let suppression = Suppression::new(channel, &key.1, SuppressionReason::SoftBounces, at)
            .with_detail(format!(
                "{in_window} soft bounces within {}s",
                policy.window.as_secs()
            ));
        state.suppressed.insert(key, suppression.clone());
        Ok(Some(suppression))
    }

    async fn list_suppressions(
        &self,
        channel: Option<NotificationKind>,
    ) -> Result<Vec<Suppression>, StoreError> {
        Ok(self
            .lock()
            .suppressed
            .values()
            .filter(|s| channel.is_none_or(|c| c == s.channel))
            .cloned()
            .collect())
    }

    async fn remove_suppression(
        &self,
        channel: NotificationKind,
        address: &str,
    ) -> Result<bool, StoreError> {
        let key = key(channel, address);
        let mut state = self.lock();
        state.soft_bounces.remove(&key);
        Ok(state.suppressed.remove(&key).is_some())
    }
}
