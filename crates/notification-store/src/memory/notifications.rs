//! [`InMemoryNotificationStore`].

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use messaging_model::{AttemptOutcome, DeliveryAttempt, Notification, NotificationStatus};
use tokio::sync::watch;
use uuid::Uuid;

use super::{micros, now, unavailable};
use crate::{InboxCursor, InboxPage, InboxQuery, NotificationStore, StatusUpdate, StoreError};

#[derive(Default)]
pub(super) struct NotificationState {
    pub(super) by_id: BTreeMap<Uuid, Notification>,
    pub(super) by_key: HashMap<(String, String), Uuid>,
    pub(super) attempts: HashMap<Uuid, Vec<DeliveryAttempt>>,
    pub(super) unavailable: bool,
}

/// Notifications kept in memory, shared by every clone.
///
/// ```
/// use notification_store::{InMemoryNotificationStore, NotificationStore};
/// use messaging_model::{Notification, NotificationKind};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let store = InMemoryNotificationStore::new();
/// store.record(&Notification::new("u1", NotificationKind::System, "Hi", "Welcome")).await.unwrap();
/// assert_eq!(store.unread_count("u1").await.unwrap(), 1);
/// assert_eq!(store.all()[0].title, "Hi");
/// # }
/// ```
#[derive(Clone)]
pub struct InMemoryNotificationStore {
    state: Arc<Mutex<NotificationState>>,
    changes: Arc<watch::Sender<u64>>,
}

impl Default for InMemoryNotificationStore {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for InMemoryNotificationStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InMemoryNotificationStore")
            .field("notifications", &self.lock().by_id.len())
            .finish()
    }
}

impl InMemoryNotificationStore {
    /// An empty store.
    pub fn new() -> Self {
        Self {
            state: Arc::new(Mutex::new(NotificationState::default())),
            changes: Arc::new(watch::channel(0).0),
        }
    }

    fn lock(&self) -> MutexGuard<'_, NotificationState> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Runs `change` on the state, failing while the store is "unavailable", and
    /// wakes the waiters of [`wait_for`](Self::wait_for) when it succeeds.
    pub(super) fn change<T>(
        &self,
        change: impl FnOnce(&mut NotificationState) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let result = {
            let mut state = self.lock();
            if state.unavailable {
                return Err(unavailable());
            }
            change(&mut state)
        };
        if result.is_ok() {
            self.changes.send_modify(|version| *version += 1);
        }
        result
    }

    pub(super) fn read<T>(
        &self,
        read: impl FnOnce(&NotificationState) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let state = self.lock();
        if state.unavailable {
            return Err(unavailable());
        }
        read(&state)
    }

    /// Every notification, oldest first.
    pub fn all(&self) -> Vec<Notification> {
        let mut all: Vec<Notification> = self.lock().by_id.values().cloned().collect();
        all.sort_by_key(|notification| (notification.created_at, notification.id));
        all
    }

    /// Every notification of one user, oldest first.
    pub fn for_user(&self, user_id: &str) -> Vec<Notification> {
        self.all()
            .into_iter()
            .filter(|notification| notification.user_id == user_id)
            .collect()
    }

    /// How many notifications are kept.
    pub fn len(&self) -> usize {
        self.lock().by_id.len()
    }

    /// True when none are kept.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Makes every call fail with [`StoreError::Unavailable`] (a transient
    /// error) until called again with `false`: to test outage handling.
    pub fn set_unavailable(&self, unavailable: bool) {
        self.lock().unavailable = unavailable;
    }

    /// Waits until `condition` holds for the notifications (oldest first), then
    /// returns them; `None` if `timeout` passes first. Wakes on each change.
    pub async fn wait_for(
        &self,
        timeout: Duration,
        mut condition: impl FnMut(&[Notification]) -> bool,
    ) -> Option<Vec<Notification>> {
        let mut changes = self.changes.subscribe();
        let waited = tokio::time::timeout(timeout, async {
            loop {
                let all = self.all();
                if condition(&all) {
                    return Some(all);
                }
                if changes.changed().await.is_err() {
                    return None;
                }
            }
        })
        .await;
        waited.ok().flatten()
    }
}

fn check_insert(state: &NotificationState, notification: &Notification) -> Result<(), StoreError> {
    crate::check_notification(notification)?;
    if state.by_id.contains_key(&notification.id) {
        return Err(StoreError::Conflict {
            what: format!("notification {} exists", notification.id),
        });
    }
    if let Some(key) = &notification.idempotency_key
        && state
            .by_key
            .contains_key(&(notification.user_id.clone(), key.clone()))
    {
        return Err(StoreError::Conflict {
            what: format!(
                "idempotency key {key:?} is taken for user {:?}",
                notification.user_id
            ),
        });
    }
    Ok(())
}

fn insert(state: &mut NotificationState, notification: &Notification) {
    if let Some(key) = &notification.idempotency_key {
        state
            .by_key
            .insert((notification.user_id.clone(), key.clone()), notification.id);
    }
    let mut stored = notification.clone();
    stored.created_at = micros(stored.created_at);
    stored.sent_at = stored.sent_at.map(micros);
    stored.read_at = stored.read_at.map(micros);
    stored.last_attempt_at = stored.last_attempt_at.map(micros);
    state.by_id.insert(notification.id, stored);
}

fn owned<'a>(
    state: &'a mut NotificationState,
    user_id: &str,
    id: Uuid,
) -> Result<&'a mut Notification, StoreError> {
    state
        .by_id
        .get_mut(&id)
        .filter(|notification| notification.user_id == user_id)
        .ok_or_else(|| StoreError::notification_not_found(id))
}

fn attempt_conflict(id: Uuid, seen_attempts: u32) -> StoreError {
    StoreError::Conflict {
        what: format!("notification {id} is sent or moved past attempt {seen_attempts}"),
    }
}

fn remove(state: &mut NotificationState, id: Uuid) {
    state.attempts.remove(&id);
    if let Some(removed) = state.by_id.remove(&id)
        && let Some(key) = removed.idempotency_key
    {
        state.by_key.remove(&(removed.user_id, key));
    }
}

#[async_trait]
impl NotificationStore for InMemoryNotificationStore {
    async fn record(&self, notification: &Notification) -> Result<(), StoreError> {
        self.change(|state| {
            check_insert(state, notification)?;
            insert(state, notification);
            Ok(())
        })
    }

    async fn record_batch(&self, notifications: &[Notification]) -> Result<(), StoreError> {
        self.change(|state| {
            // All or none: check every row (and the batch against itself) first.
            let mut ids = std::collections::HashSet::new();
            let mut keys = std::collections::HashSet::new();
            for notification in notifications {
                check_insert(state, notification)?;
                if !ids.insert(notification.id) {
                    return Err(StoreError::Conflict {
                        what: format!(
                            "notification {} appears twice in the batch",
                            notification.id
                        ),
                    });
                }
                if let Some(key) = &notification.idempotency_key
                    && !keys.insert((notification.user_id.as_str(), key.as_str()))
                {
                    return Err(StoreError::Conflict {
                        what: format!("idempotency key {key:?} appears twice in the batch"),
                    });
                }
            }
            for notification in notifications {
                insert(state, notification);
            }
            Ok(())
        })
    }

    async fn update_status(
        &self,
        id: Uuid,
        update: StatusUpdate,
    ) -> Result<Notification, StoreError> {
        self.change(|state| {
            let notification = state
                .by_id
                .get_mut(&id)
                .ok_or_else(|| StoreError::notification_not_found(id))?;
            match update {
                StatusUpdate::Sent { at } => {
                    notification.status = NotificationStatus::Sent;
                    notification.sent_at = Some(micros(at));
                    notification.error = None;
                }
                StatusUpdate::Failed { error } => {
                    notification.status = NotificationStatus::Failed;
                    notification.error = Some(error);
                }
                StatusUpdate::Skipped { reason } => {
                    if !matches!(
                        notification.status,
                        NotificationStatus::Pending | NotificationStatus::Scheduled
                    ) {
                        return Err(StoreError::Conflict {
                            what: format!(
                                "notification {id} is {}, not pending or scheduled",
                                notification.status.as_str()
                            ),
                        });
                    }
                    notification.status = NotificationStatus::Skipped;
                    notification.error = Some(reason);
                }
                StatusUpdate::Suppressed { reason } => {
                    if !matches!(
                        notification.status,
                        NotificationStatus::Pending
                            | NotificationStatus::Scheduled
                            | NotificationStatus::Failed
                    ) {
                        return Err(StoreError::Conflict {
                            what: format!(
                                "notification {id} is {}, not pending, scheduled or failed",
                                notification.status.as_str()
                            ),
                        });
                    }
                    notification.status = NotificationStatus::Suppressed;
                    notification.error = Some(reason);
                }
            }
            Ok(notification.clone())
        })
    }

    async fn begin_attempt(
        &self,
        id: Uuid,
        seen_attempts: u32,
        at: DateTime<Utc>,
    ) -> Result<Notification, StoreError> {
        self.change(|state| {
            let notification = state
                .by_id
                .get_mut(&id)
                .ok_or_else(|| StoreError::notification_not_found(id))?;
            if notification.status.was_accepted() || notification.attempts != seen_attempts {
                return Err(attempt_conflict(id, seen_attempts));
            }
            notification.status = NotificationStatus::Sending;
            notification.attempts = seen_attempts.saturating_add(1);
            notification.last_attempt_at = Some(micros(at));
            Ok(notification.clone())
        })
    }

    async fn record_attempt(&self, attempt: &DeliveryAttempt) -> Result<Notification, StoreError> {
        self.change(|state| {
            let id = attempt.notification_id;
            let notification = state
                .by_id
                .get_mut(&id)
                .ok_or_else(|| StoreError::notification_not_found(id))?;
            let latest = attempt.number == notification.attempts;
            match attempt.outcome {
                // Accepted once: sent, or what its provider reported since.
                _ if notification.status.was_accepted() => {}
                AttemptOutcome::Sent => {
                    notification.status = NotificationStatus::Sent;
                    notification.sent_at = Some(micros(attempt.finished_at()));
                    notification.error = None;
                }
                AttemptOutcome::Failed if latest => {
                    notification.status = NotificationStatus::Failed;
                    notification.error.clone_from(&attempt.error);
                }
                AttemptOutcome::Unknown if latest => {
                    notification.status = NotificationStatus::Unknown;
                    notification.error.clone_from(&attempt.error);
                }
                AttemptOutcome::Failed | AttemptOutcome::Unknown => {}
            }
            let updated = notification.clone();
            let mut logged = attempt.clone();
            logged.started_at = micros(logged.started_at);
            state.attempts.entry(id).or_default().push(logged);
            Ok(updated)
        })
    }

    async fn list_attempts(
        &self,
        user_id: &str,
        notification_id: Uuid,
    ) -> Result<Vec<DeliveryAttempt>, StoreError> {
        self.read(|state| {
            state
                .by_id
                .get(&notification_id)
                .filter(|notification| notification.user_id == user_id)
                .ok_or_else(|| StoreError::notification_not_found(notification_id))?;
            let mut attempts = state
                .attempts
                .get(&notification_id)
                .cloned()
                .unwrap_or_default();
            attempts.sort_by_key(|attempt| attempt.number);
            Ok(attempts)
        })
    }

    async fn get_notification(&self, user_id: &str, id: Uuid) -> Result<Notification, StoreError> {
        self.read(|state| {
            state
                .by_id
                .get(&id)
                .filter(|notification| notification.user_id == user_id)
                .cloned()
                .ok_or_else(|| StoreError::notification_not_found(id))
        })
    }

    async fn find_by_idempotency_key(
        &self,
        user_id: &str,
        key: &str,
    ) -> Result<Option<Notification>, StoreError> {
        self.read(|state| {
            Ok(state
                .by_key
                .get(&(user_id.to_owned(), key.to_owned()))
                .and_then(|id| state.by_id.get(id))
                .cloned())
        })
    }

    async fn list_for_user(
        &self,
        user_id: &str,
        query: &InboxQuery,
    ) -> Result<InboxPage, StoreError> {
        query.check()?;
        self.read(|state| {
            let mut matching: Vec<&Notification> = state
                .by_id
                .values()
                .filter(|n| n.user_id == user_id)
                .filter(|n| query.kind.is_none_or(|kind| n.kind == kind))
                .filter(|n| !query.unread_only || !n.is_read)
                .filter(|n| query.since.is_none_or(|since| n.created_at >= since))
                .filter(|n| {
                    query
                        .cursor
                        .is_none_or(|cursor| (n.created_at, n.id) < (cursor.created_at, cursor.id))
                })
                .collect();
            matching.sort_by_key(|n| std::cmp::Reverse((n.created_at, n.id)));
            let limit = query.limit as usize;
            let more = matching.len() > limit;
            let items: Vec<Notification> = matching.into_iter().take(limit).cloned().collect();
            let next_cursor = if more {
                items.last().map(InboxCursor::after)
            } else {
                None
            };
            Ok(InboxPage { items, next_cursor })
        })
    }

    async fn unread_count(&self, user_id: &str) -> Result<u64, StoreError> {
        self.read(|state| {
            Ok(state
                .by_id
                .values()
                .filter(|n| n.user_id == user_id && !n.is_read)
                .count() as u64)
        })
    }

    async fn mark_read(&self, user_id: &str, id: Uuid) -> Result<(), StoreError> {
        self.change(|state| {
            let notification = owned(state, user_id, id)?;
            if !notification.is_read {
                notification.is_read = true;
                notification.read_at = Some(now());
            }
            Ok(())
        })
    }

    async fn mark_unread(&self, user_id: &str, id: Uuid) -> Result<(), StoreError> {
        self.change(|state| {
            let notification = owned(state, user_id, id)?;
            notification.is_read = false;
            notification.read_at = None;
            Ok(())
        })
    }

    async fn mark_all_read(&self, user_id: &str) -> Result<u64, StoreError> {
        self.change(|state| {
            let now = now();
            let mut changed = 0;
            for notification in state.by_id.values_mut() {
                if notification.user_id == user_id && !notification.is_read {
                    notification.is_read = true;
                    notification.read_at = Some(now);
                    changed += 1;
                }
            }
            Ok(changed)
        })
    }

    async fn delete(&self, user_id: &str, id: Uuid) -> Result<(), StoreError> {
        self.change(|state| {
            owned(state, user_id, id)?;
            remove(state, id);
            Ok(())
        })
    }

    async fn purge_older_than(&self, cutoff: DateTime<Utc>) -> Result<u64, StoreError> {
        self.change(|state| {
            let old: Vec<Uuid> = state
                .by_id
                .values()
                .filter(|n| n.created_at < cutoff)
                .map(|n| n.id)
                .collect();
            for id in &old {
                remove(state, *id);
            }
            Ok(old.len() as u64)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use messaging_model::NotificationKind;

    #[tokio::test]
    async fn pages_newest_first_with_a_cursor() {
        let store = InMemoryNotificationStore::new();
        for i in 0..5 {
            store
                .record(&Notification::new(
                    "u",
                    NotificationKind::System,
                    format!("n{i}"),
                    "",
                ))
                .await
                .unwrap();
        }
        store
            .record(&Notification::new(
                "other",
                NotificationKind::System,
                "x",
                "",
            ))
            .await
            .unwrap();
        let first = store
            .list_for_user("u", &InboxQuery::default().with_limit(2))
            .await
            .unwrap();
        assert_eq!(
            first
                .items
                .iter()
                .map(|n| n.title.as_str())
                .collect::<Vec<_>>(),
            ["n4", "n3"]
        );
        let cursor = first.next_cursor.unwrap();
        let second = store
            .list_for_user(
                "u",
                &InboxQuery::default().with_limit(3).with_cursor(cursor),
            )
            .await
            .unwrap();
        assert_eq!(second.items.len(), 3);
        assert!(second.next_cursor.is_none());
    }

    #[tokio::test]
    async fn idempotency_keys_are_unique_per_user() {
        let store = InMemoryNotificationStore::new();
        let a = Notification::new("u", NotificationKind::Email, "a", "").with_idempotency_key("k");
        store.record(&a).await.unwrap();
        let again =
            Notification::new("u", NotificationKind::Email, "b", "").with_idempotency_key("k");
        assert!(store.record(&again).await.unwrap_err().is_conflict());
        let other_user =
            Notification::new("v", NotificationKind::Email, "b", "").with_idempotency_key("k");
        store.record(&other_user).await.unwrap();
        assert_eq!(
            store
                .find_by_idempotency_key("u", "k")
                .await
                .unwrap()
                .unwrap()
                .id,
            a.id
        );
    }

    #[tokio::test]
    async fn other_users_rows_are_not_found() {
        let store = InMemoryNotificationStore::new();
        let n = Notification::new("u", NotificationKind::System, "a", "");
        store.record(&n).await.unwrap();
        assert!(
            store
                .get_notification("v", n.id)
                .await
                .unwrap_err()
                .is_not_found()
        );
        assert!(store.mark_read("v", n.id).await.unwrap_err().is_not_found());
        assert!(store.delete("v", n.id).await.unwrap_err().is_not_found());
        store.mark_read("u", n.id).await.unwrap();
        assert_eq!(store.unread_count("u").await.unwrap(), 0);
    }

    #[tokio::test]
    async fn an_unavailable_store_fails_transiently() {
        let store = InMemoryNotificationStore::new();
        store.set_unavailable(true);
        let error = store.unread_count("u").await.unwrap_err();
        assert!(error.is_transient());
        store.set_unavailable(false);
        assert_eq!(store.unread_count("u").await.unwrap(), 0);
    }
}
