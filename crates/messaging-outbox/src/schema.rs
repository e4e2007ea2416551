//! The outbox table's migrations, and what is in the table.

use chrono::{DateTime, Utc};
use sqlx::AssertSqlSafe;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgPool, PgPoolOptions};

use crate::error::database_error;
use crate::{Outbox, OutboxError};

/// This crate's `migrations/`, embedded at build time with checksums.
///
/// [`migrate`] applies them with their own migrations table,
/// [`MIGRATIONS_TABLE`], not sqlx's default `_sqlx_migrations`: the outbox can
/// then share a schema with another migration set (the notification store's,
/// or the application's own), whose migrator would otherwise fail on versions
/// it does not know. With `sqlx-cli`:
/// `sqlx migrate run --source crates/messaging-outbox/migrations` after setting
/// `migrate.table-name = "_outbox_migrations"` in `sqlx.toml`.
pub static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

/// The table recording which outbox migrations ran, in the outbox's schema.
pub const MIGRATIONS_TABLE: &str = "_outbox_migrations";

/// Creates the outbox's schema if missing and applies the pending migrations,
/// recorded in `MIGRATIONS_TABLE` of that schema (or of the first schema of
/// the pool's `search_path` for [`Outbox::new`]).
///
/// Runs on a dedicated connection closed afterwards, pass or fail, so the
/// migrator's advisory lock never outlives it. Concurrent callers wait for
/// each other.
pub async fn migrate(pool: &PgPool, outbox: &Outbox) -> Result<(), OutboxError> {
    let mut options = (*pool.connect_options()).clone();
    if let Some(schema) = outbox.schema() {
        options = options.options([("search_path", schema)]);
    }
    let dedicated = PgPoolOptions::new()
        .max_connections(1)
        .connect_with(options)
        .await
        .map_err(database_error)?;
    let outcome = async {
        let mut migrator = Migrator::with_migrations(MIGRATOR.iter().cloned().collect());
        if let Some(schema) = outbox.schema() {
            // Checked on construction: [a-z0-9_] only, no quoting needed.
            let sql = format!("CREATE SCHEMA IF NOT EXISTS {schema}");
            match sqlx::raw_sql(AssertSqlSafe(sql)).execute(&dedicated).await {
                Ok(_) => {}
                // Another migrate created it between the check and the insert.
                Err(error) if created_concurrently(&error) => {}
                Err(error) => return Err(database_error(error)),
            }
            migrator.dangerous_set_table_name(format!("{schema}.{MIGRATIONS_TABLE}"));
        } else {
            migrator.dangerous_set_table_name(MIGRATIONS_TABLE);
        }
        migrator
            .run(&dedicated)
            .await
            .map_err(|source| OutboxError::Migrate { source })
    }
    .await;
    dedicated.close().await;
    match &outcome {
        Ok(()) => tracing::info!(table = outbox.table(), "outbox migrations applied"),
        Err(error) => tracing::error!(table = outbox.table(), %error, "outbox migrations failed"),
    }
    outcome
}

fn created_concurrently(error: &sqlx::Error) -> bool {
    error
        .as_database_error()
        .and_then(|db| db.code())
        .is_some_and(|code| code == "23505" || code == "42P06")
}

/// What the outbox holds ([`Outbox::stats`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct OutboxStats {
    /// Rows not yet published.
    pub pending: i64,
    /// Published rows still kept (retention).
    pub published: i64,
    /// Rows the backend refused for good, kept for an operator.
    pub failed: i64,
    /// When the oldest pending row was written, if any.
    pub oldest_pending: Option<DateTime<Utc>>,
}

impl Outbox {
    /// Counts the rows by state (a full scan of the table: for operators and
    /// tests, not a hot path).
    pub async fn stats(&self, pool: &PgPool) -> Result<OutboxStats, OutboxError> {
        let sql = format!(
            "SELECT count(*) FILTER (WHERE state = 'pending'), \
                    count(*) FILTER (WHERE state = 'published'), \
                    count(*) FILTER (WHERE state = 'failed'), \
                    (SELECT created_at FROM {table} WHERE state = 'pending' ORDER BY seq LIMIT 1) \
             FROM {table}",
            table = self.table()
        );
        let (pending, published, failed, oldest_pending) = sqlx::query_as(AssertSqlSafe(sql))
            .fetch_one(pool)
            .await
            .map_err(database_error)?;
        Ok(OutboxStats {
            pending,
            published,
            failed,
            oldest_pending,
        })
    }
}
