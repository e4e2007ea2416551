//! [`InMemoryPreferenceStore`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use uuid::Uuid;

use crate::preferences::check_user_id;
use crate::{PreferenceChange, PreferenceStore, Preferences, StoreError};

/// Preferences kept in this process. Cloning shares them.
#[derive(Debug, Clone, Default)]
pub struct InMemoryPreferenceStore {
    state: Arc<Mutex<State>>,
}

#[derive(Debug, Default)]
struct State {
    by_user: HashMap<String, Preferences>,
    subscribers: HashMap<Uuid, String>,
    subscriber_of: HashMap<String, Uuid>,
}

impl InMemoryPreferenceStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[async_trait]
impl PreferenceStore for InMemoryPreferenceStore {
    async fn get_preferences(&self, user_id: &str) -> Result<Preferences, StoreError> {
        check_user_id(user_id)?;
        Ok(self
            .lock()
            .by_user
            .get(user_id)
            .cloned()
            .unwrap_or_else(|| Preferences::new(user_id)))
    }

    async fn update_preferences(
        &self,
        user_id: &str,
        changes: &[PreferenceChange],
    ) -> Result<Preferences, StoreError> {
        check_user_id(user_id)?;
        let mut state = self.lock();
        let prefs = state
            .by_user
            .entry(user_id.to_owned())
            .or_insert_with(|| Preferences::new(user_id));
        for change in changes {
            prefs.apply(change);
        }
        let now = super::now();
        // Never earlier than before, even if the clock stepped back.
        prefs.updated_at = Some(prefs.updated_at.map_or(now, |before| before.max(now)));
        Ok(prefs.clone())
    }

    async fn subscriber_id(&self, user_id: &str) -> Result<Uuid, StoreError> {
        check_user_id(user_id)?;
        let mut state = self.lock();
        if let Some(id) = state.subscriber_of.get(user_id) {
            return Ok(*id);
        }
        let id = Uuid::new_v4();
        state.subscriber_of.insert(user_id.to_owned(), id);
        state.subscribers.insert(id, user_id.to_owned());
        Ok(id)
    }

    async fn user_of_subscriber(&self, subscriber_id: Uuid) -> Result<Option<String>, StoreError> {
        Ok(self.lock().subscribers.get(&subscriber_id).cloned())
    }
}
