//! [`InMemoryDigestStore`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::Value;
use uuid::Uuid;

use crate::preferences::check_user_id;
use crate::{DigestAppend, DigestStore, DigestWindow, StoreError};

/// Digest windows kept in this process. Cloning shares them.
#[derive(Debug, Clone, Default)]
pub struct InMemoryDigestStore {
    state: Arc<Mutex<State>>,
}

#[derive(Debug, Default)]
struct State {
    windows: HashMap<Uuid, (DigestWindow, String)>,
    open: HashMap<(String, String), Uuid>,
    seen: HashMap<(String, String, String), Uuid>,
}

impl InMemoryDigestStore {
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

fn answer(window: &DigestWindow, opener: &str, event_id: &str) -> DigestAppend {
    DigestAppend {
        window_id: window.id,
        count: u32::try_from(window.events.len()).unwrap_or(u32::MAX),
        opened_at: window.opened_at,
        opened_by_this_event: opener == event_id,
        closed: window.closed_at.is_some(),
    }
}

#[async_trait]
impl DigestStore for InMemoryDigestStore {
    async fn append_digest_event(
        &self,
        user_id: &str,
        digest_key: &str,
        event_id: &str,
        event: &Value,
        max_events: u32,
        at: DateTime<Utc>,
    ) -> Result<DigestAppend, StoreError> {
        check_user_id(user_id)?;
        let mut state = self.lock();
        let seen_key = (
            user_id.to_owned(),
            digest_key.to_owned(),
            event_id.to_owned(),
        );
        if let Some(id) = state.seen.get(&seen_key)
            && let Some((window, opener)) = state.windows.get(id)
        {
            return Ok(answer(window, opener, event_id));
        }
        let open_key = (user_id.to_owned(), digest_key.to_owned());
        // A full window is closed: this event opens the next.
        if let Some(id) = state.open.get(&open_key).copied()
            && let Some((window, _)) = state.windows.get_mut(&id)
            && window.events.len() >= usize::try_from(max_events.max(1)).unwrap_or(usize::MAX)
        {
            window.closed_at.get_or_insert(super::micros(at));
            state.open.remove(&open_key);
        }
        let id = match state.open.get(&open_key) {
            Some(id) => *id,
            None => {
                let window = DigestWindow {
                    id: Uuid::now_v7(),
                    user_id: user_id.to_owned(),
                    digest_key: digest_key.to_owned(),
                    opened_at: super::micros(at),
                    closed_at: None,
                    events: Vec::new(),
                };
                let id = window.id;
                state.windows.insert(id, (window, event_id.to_owned()));
                state.open.insert(open_key, id);
                id
            }
        };
        state.seen.insert(seen_key, id);
        let (window, opener) =
            state
                .windows
                .get_mut(&id)
                .ok_or_else(|| StoreError::InvalidInput {
                    reason: "digest window vanished".into(),
                })?;
        window.events.push(event.clone());
        Ok(answer(window, opener, event_id))
    }

    async fn close_digest(
        &self,
        user_id: &str,
        window_id: Uuid,
        at: DateTime<Utc>,
    ) -> Result<Option<DigestWindow>, StoreError> {
        let mut state = self.lock();
        let Some((window, _)) = state.windows.get_mut(&window_id) else {
            return Ok(None);
        };
        if window.user_id != user_id {
            return Ok(None);
        }
        if window.closed_at.is_none() {
            window.closed_at = Some(super::micros(at));
        }
        let window = window.clone();
        let open_key = (window.user_id.clone(), window.digest_key.clone());
        if state.open.get(&open_key) == Some(&window_id) {
            state.open.remove(&open_key);
        }
        Ok(Some(window))
    }
}
