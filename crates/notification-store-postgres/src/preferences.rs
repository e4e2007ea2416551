//! [`PreferenceStore`] for [`PostgresStore`]: table `notification_preferences`,
//! one row per user, the settings as JSON, changed under the row's lock.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use notification_store::{
    OptOut, PreferenceChange, PreferenceStore, Preferences, QuietHours, StoreError, check_user_id,
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::PostgresStore;
use crate::error::store_error;

const GET: &str = include_str!("../queries/preferences_get.sql");
const ENSURE: &str = include_str!("../queries/preferences_ensure.sql");
const LOCK: &str = include_str!("../queries/preferences_lock.sql");
const SAVE: &str = include_str!("../queries/preferences_save.sql");
const SUBSCRIBER_ID: &str = include_str!("../queries/subscriber_id.sql");
const SUBSCRIBER_USER: &str = include_str!("../queries/subscriber_user.sql");

/// The `preferences` column: [`Preferences`] without what the row's other
/// columns hold.
#[derive(Serialize, Deserialize, Default)]
struct Stored {
    #[serde(default)]
    opt_outs: Vec<OptOut>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    quiet_hours: Option<QuietHours>,
}

#[derive(sqlx::FromRow)]
struct Row {
    preferences: String,
    updated_at: Option<DateTime<Utc>>,
}

fn decode(user_id: &str, row: Option<Row>) -> Result<Preferences, StoreError> {
    let mut prefs = Preferences::new(user_id);
    if let Some(row) = row {
        let stored: Stored =
            serde_json::from_str(&row.preferences).map_err(|error| StoreError::Query {
                source: format!("notification_preferences.preferences of {user_id:?}: {error}")
                    .into(),
            })?;
        prefs.opt_outs = stored.opt_outs;
        prefs.quiet_hours = stored.quiet_hours;
        prefs.updated_at = row.updated_at;
    }
    Ok(prefs)
}

#[async_trait]
impl PreferenceStore for PostgresStore {
    async fn get_preferences(&self, user_id: &str) -> Result<Preferences, StoreError> {
        check_user_id(user_id)?;
        let row = sqlx::query_as::<_, Row>(GET)
            .bind(user_id)
            .fetch_optional(&self.pool)
            .await
            .map_err(store_error)?;
        decode(user_id, row)
    }

    async fn update_preferences(
        &self,
        user_id: &str,
        changes: &[PreferenceChange],
    ) -> Result<Preferences, StoreError> {
        check_user_id(user_id)?;
        let mut tx = self.pool.begin().await.map_err(store_error)?;
        sqlx::query(ENSURE)
            .bind(user_id)
            .bind(Uuid::new_v4())
            .execute(&mut *tx)
            .await
            .map_err(store_error)?;
        let row = sqlx::query_as::<_, Row>(LOCK)
            .bind(user_id)
            .fetch_one(&mut *tx)
            .await
            .map_err(store_error)?;
        let mut prefs = decode(user_id, Some(row))?;
        for change in changes {
            prefs.apply(change);
        }
        let stored = Stored {
            opt_outs: prefs.opt_outs.clone(),
            quiet_hours: prefs.quiet_hours.clone(),
        };
        let json = serde_json::to_string(&stored).map_err(|error| StoreError::InvalidInput {
            reason: format!("preferences of {user_id:?}: {error}"),
        })?;
        let updated_at: Option<DateTime<Utc>> = sqlx::query_scalar(SAVE)
            .bind(user_id)
            .bind(json)
            .fetch_one(&mut *tx)
            .await
            .map_err(store_error)?;
        tx.commit().await.map_err(store_error)?;
        prefs.updated_at = updated_at;
        Ok(prefs)
    }

    async fn subscriber_id(&self, user_id: &str) -> Result<Uuid, StoreError> {
        check_user_id(user_id)?;
        sqlx::query_scalar(SUBSCRIBER_ID)
            .bind(user_id)
            .bind(Uuid::new_v4())
            .fetch_one(&self.pool)
            .await
            .map_err(store_error)
    }

    async fn user_of_subscriber(&self, subscriber_id: Uuid) -> Result<Option<String>, StoreError> {
        sqlx::query_scalar(SUBSCRIBER_USER)
            .bind(subscriber_id)
            .fetch_optional(&self.pool)
            .await
            .map_err(store_error)
    }
}
