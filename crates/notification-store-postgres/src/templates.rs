//! [`TemplateStore`] for [`PostgresStore`].

use async_trait::async_trait;
use messaging_model::MessageTemplate;
use notification_store::{StoreError, TemplateStore};

use crate::PostgresStore;
use crate::error::store_error;
use crate::rows::TemplateRow;

const GET: &str = include_str!("../queries/template_get.sql");
const SAVE: &str = include_str!("../queries/template_save.sql");
const LIST: &str = include_str!("../queries/template_list.sql");
const DEACTIVATE: &str = include_str!("../queries/template_deactivate.sql");

#[async_trait]
impl TemplateStore for PostgresStore {
    async fn get_template(
        &self,
        name: &str,
        locale: Option<&str>,
    ) -> Result<Option<MessageTemplate>, StoreError> {
        sqlx::query_as::<_, TemplateRow>(GET)
            .bind(name)
            .bind(locale)
            .fetch_optional(&self.pool)
            .await
            .map_err(store_error)?
            .map(MessageTemplate::try_from)
            .transpose()
    }

    async fn save(&self, t: &MessageTemplate) -> Result<MessageTemplate, StoreError> {
        let created_at = chrono::DateTime::from_timestamp_micros(t.created_at.timestamp_micros())
            .unwrap_or(t.created_at);
        let row = sqlx::query_as::<_, TemplateRow>(SAVE)
            .bind(t.id)
            .bind(&t.name)
            .bind(t.kind.as_str())
            .bind(t.locale.as_deref())
            .bind(t.subject.as_deref())
            .bind(&t.content)
            .bind(&t.variables)
            .bind(t.is_active)
            .bind(&t.metadata)
            .bind(created_at)
            .fetch_one(&self.pool)
            .await
            .map_err(store_error)?;
        MessageTemplate::try_from(row)
    }

    async fn list(&self) -> Result<Vec<MessageTemplate>, StoreError> {
        sqlx::query_as::<_, TemplateRow>(LIST)
            .fetch_all(&self.pool)
            .await
            .map_err(store_error)?
            .into_iter()
            .map(MessageTemplate::try_from)
            .collect()
    }

    async fn deactivate(&self, name: &str, locale: Option<&str>) -> Result<(), StoreError> {
        let done = sqlx::query(DEACTIVATE)
            .bind(name)
            .bind(locale)
            .execute(&self.pool)
            .await
            .map_err(store_error)?;
        if done.rows_affected() == 0 {
            return Err(StoreError::template_not_found(name));
        }
        Ok(())
    }
}
