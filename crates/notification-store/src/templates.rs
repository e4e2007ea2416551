//! The [`TemplateStore`] trait: templates by name and locale.

use async_trait::async_trait;
use messaging_model::MessageTemplate;

use crate::StoreError;

/// Where templates are kept, one row per name and locale (`None`: the default;
/// an empty locale string is [`StoreError::InvalidInput`], so it can never shadow
/// the default). Template ids are unique across names and locales.
#[async_trait]
pub trait TemplateStore: Send + Sync + 'static {
    /// The template with this name and locale, active or not (the caller refuses
    /// inactive ones with a clear error); `None` when there is none.
    async fn get_template(
        &self,
        name: &str,
        locale: Option<&str>,
    ) -> Result<Option<MessageTemplate>, StoreError>;

    /// Inserts the template, or replaces the one with the same name and locale
    /// (keeping its id and `created_at`, bumping `updated_at`). Returns what is stored.
    async fn save(&self, template: &MessageTemplate) -> Result<MessageTemplate, StoreError>;

    /// Every template, by name then locale (default first).
    async fn list(&self) -> Result<Vec<MessageTemplate>, StoreError>;

    /// Marks a template inactive. [`StoreError::NotFound`] when there is none.
    async fn deactivate(&self, name: &str, locale: Option<&str>) -> Result<(), StoreError>;
}
