//! [`InMemoryTemplateStore`].

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use chrono::Utc;
use messaging_model::MessageTemplate;

use super::{now, unavailable};
use crate::{StoreError, TemplateStore};

#[derive(Default)]
struct TemplateState {
    /// Keyed by name, then locale (`None` sorts first).
    templates: BTreeMap<(String, Option<String>), MessageTemplate>,
    unavailable: bool,
}

/// Templates kept in memory, shared by every clone.
///
/// ```
/// use notification_store::{InMemoryTemplateStore, TemplateStore};
/// use messaging_model::{MessageTemplate, TemplateKind};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let store = InMemoryTemplateStore::new();
/// store.save(&MessageTemplate::new("code_sms", TemplateKind::Sms, "Code {{code}}")).await.unwrap();
/// assert!(store.get_template("code_sms", None).await.unwrap().is_some());
/// assert!(store.get_template("code_sms", Some("fr")).await.unwrap().is_none());
/// # }
/// ```
#[derive(Clone, Default)]
pub struct InMemoryTemplateStore {
    state: Arc<Mutex<TemplateState>>,
}

impl std::fmt::Debug for InMemoryTemplateStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InMemoryTemplateStore")
            .field("templates", &self.lock().templates.len())
            .finish()
    }
}

impl InMemoryTemplateStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, TemplateState> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Makes every call fail with [`StoreError::Unavailable`] until called again
    /// with `false`.
    pub fn set_unavailable(&self, unavailable: bool) {
        self.lock().unavailable = unavailable;
    }

    fn with<T>(
        &self,
        f: impl FnOnce(&mut TemplateState) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut state = self.lock();
        if state.unavailable {
            return Err(unavailable());
        }
        f(&mut state)
    }
}

fn key(name: &str, locale: Option<&str>) -> (String, Option<String>) {
    (name.to_owned(), locale.map(str::to_owned))
}

#[async_trait]
impl TemplateStore for InMemoryTemplateStore {
    async fn get_template(
        &self,
        name: &str,
        locale: Option<&str>,
    ) -> Result<Option<MessageTemplate>, StoreError> {
        self.with(|state| Ok(state.templates.get(&key(name, locale)).cloned()))
    }

    async fn save(&self, template: &MessageTemplate) -> Result<MessageTemplate, StoreError> {
        if template.locale.as_deref() == Some("") {
            return Err(StoreError::InvalidInput {
                reason: "a template locale must not be empty (use None for the default)".into(),
            });
        }
        self.with(|state| {
            let key = key(&template.name, template.locale.as_deref());
            let mut stored = template.clone();
            stored.updated_at = now();
            if let Some(existing) = state.templates.get(&key) {
                stored.id = existing.id;
                stored.created_at = existing.created_at;
                // Strictly later, so a change is visible even within one clock tick.
                stored.updated_at = stored
                    .updated_at
                    .max(existing.updated_at + chrono::Duration::microseconds(1));
            } else if let Some((taken, _)) =
                state.templates.iter().find(|(_, t)| t.id == template.id)
            {
                return Err(StoreError::Conflict {
                    what: format!(
                        "template id {} is taken by {:?} (locale {:?})",
                        template.id, taken.0, taken.1
                    ),
                });
            }
            state.templates.insert(key, stored.clone());
            Ok(stored)
        })
    }

    async fn list(&self) -> Result<Vec<MessageTemplate>, StoreError> {
        self.with(|state| Ok(state.templates.values().cloned().collect()))
    }

    async fn deactivate(&self, name: &str, locale: Option<&str>) -> Result<(), StoreError> {
        self.with(|state| {
            let template = state
                .templates
                .get_mut(&key(name, locale))
                .ok_or_else(|| StoreError::template_not_found(name))?;
            if template.is_active {
                template.is_active = false;
                template.updated_at =
                    Utc::now().max(template.updated_at + chrono::Duration::microseconds(1));
            }
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn saving_again_keeps_the_id_and_bumps_updated_at() {
        let store = InMemoryTemplateStore::new();
        let first = store
            .save(&MessageTemplate::new(
                "t",
                messaging_model::TemplateKind::Sms,
                "a",
            ))
            .await
            .unwrap();
        let second = store
            .save(&MessageTemplate::new(
                "t",
                messaging_model::TemplateKind::Sms,
                "b",
            ))
            .await
            .unwrap();
        assert_eq!(first.id, second.id);
        assert!(second.updated_at > first.updated_at);
        assert_eq!(store.list().await.unwrap().len(), 1);
        store.deactivate("t", None).await.unwrap();
        assert!(
            !store
                .get_template("t", None)
                .await
                .unwrap()
                .unwrap()
                .is_active
        );
        assert!(
            store
                .deactivate("t", Some("fr"))
                .await
                .unwrap_err()
                .is_not_found()
        );
    }
}
