//! [`PostgresStore`]: the pool, connecting and migrating.

use std::str::FromStr;

use sqlx::AssertSqlSafe;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};

use crate::config::{DEFAULT_APPLICATION_NAME, check_schema_name};
use crate::group_commit::GroupCommit;
use crate::{PostgresStoreConfig, PostgresStoreError};

/// The workspace's `migrations/` directory, embedded at build time with checksums.
///
/// The same files run with `sqlx migrate run --source migrations`.
pub static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

/// Notifications and templates in PostgreSQL: implements
/// [`notification_store::NotificationStore`] and [`notification_store::TemplateStore`].
///
/// Cloning is cheap and shares the pool.
///
/// ```no_run
/// use notification_store_postgres::{PostgresStore, PostgresStoreConfig};
/// use notification_store::NotificationStore;
/// use messaging_model::{Notification, NotificationKind};
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let store = PostgresStore::connect(PostgresStoreConfig::from_env()?).await?;
/// store.migrate().await?;
/// let notification = Notification::new("user-1", NotificationKind::System, "Hi", "Welcome");
/// store.record(&notification).await?;
/// assert_eq!(store.unread_count("user-1").await?, 1);
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct PostgresStore {
    pub(crate) pool: PgPool,
    schema: Option<String>,
    /// The writers of group commit, when on.
    pub(crate) group: Option<GroupCommit>,
}

impl PostgresStore {
    /// Opens a pool as `config` says and checks one connection.
    ///
    /// Errors: [`PostgresStoreError::InvalidUrl`], [`PostgresStoreError::InvalidSchemaName`],
    /// or [`PostgresStoreError::Connect`] when the server cannot be reached.
    pub async fn connect(config: PostgresStoreConfig) -> Result<Self, PostgresStoreError> {
        let options = connect_options(&config)?;
        let pool = pool_options(&config)
            .connect_with(options)
            .await
            .map_err(|source| PostgresStoreError::Connect { source })?;
        Ok(Self::assemble(pool, &config))
    }

    /// Like [`PostgresStore::connect`], but opens connections only when a query
    /// needs one: nothing is checked until then. Must be called from within a
    /// Tokio runtime ([`PostgresStoreError::NoRuntime`] otherwise).
    pub fn connect_lazy(config: PostgresStoreConfig) -> Result<Self, PostgresStoreError> {
        let options = connect_options(&config)?;
        // sqlx would panic spawning its pool tasks without a runtime.
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(PostgresStoreError::NoRuntime);
        }
        let pool = pool_options(&config).connect_lazy_with(options);
        Ok(Self::assemble(pool, &config))
    }

    /// A store over a pool built elsewhere (its connections' `search_path` decides
    /// where the tables are), with group commit on and its defaults.
    pub fn from_pool(pool: PgPool) -> Self {
        Self::assemble(pool, &PostgresStoreConfig::default())
    }

    fn assemble(pool: PgPool, config: &PostgresStoreConfig) -> Self {
        Self {
            group: config
                .group_commit
                .map(|group| GroupCommit::new(pool.clone(), group)),
            pool,
            schema: config.schema.clone(),
        }
    }

    /// The pool, for queries of your own.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Counters of group commit (`None` when it is off).
    pub fn group_commit_stats(&self) -> Option<crate::GroupCommitStats> {
        self.group.as_ref().map(GroupCommit::stats)
    }

    /// The configured schema, if any.
    pub fn schema(&self) -> Option<&str> {
        self.schema.as_deref()
    }

    /// Creates the configured schema if missing and applies the pending migrations
    /// of [`MIGRATOR`] (the migrations table `_sqlx_migrations` lives in the same
    /// schema).
    ///
    /// Runs on a dedicated connection that is closed afterwards, pass or fail: the
    /// migrator's session-level advisory lock (held while a migration runs, and not
    /// released by sqlx when one fails) can never leak into the pool. Concurrent
    /// callers wait for each other.
    pub async fn migrate(&self) -> Result<(), PostgresStoreError> {
        // A pool of one connection rather than a bare connection: `Migrator::run`
        // over `&PgPool` gives a `Send` future.
        let dedicated = PgPoolOptions::new()
            .max_connections(1)
            .connect_with((*self.pool.connect_options()).clone())
            .await
            .map_err(|source| PostgresStoreError::Connect { source })?;
        let outcome = async {
            if let Some(schema) = &self.schema {
                // The name was checked by connect: [a-z0-9_] only, no quoting needed.
                let sql = format!("CREATE SCHEMA IF NOT EXISTS {schema}");
                match sqlx::raw_sql(AssertSqlSafe(sql)).execute(&dedicated).await {
                    Ok(_) => {}
                    // Another migrate created it between the check and the insert.
                    Err(error) if created_concurrently(&error) => {}
                    Err(source) => {
                        return Err(PostgresStoreError::CreateSchema {
                            schema: schema.clone(),
                            source,
                        });
                    }
                }
            }
            MIGRATOR
                .run(&dedicated)
                .await
                .map_err(|source| PostgresStoreError::Migrate { source })
        }
        .await;
        // Ending the session releases every lock it holds, pass or fail.
        dedicated.close().await;
        match &outcome {
            Ok(()) => {
                tracing::info!(schema = ?self.schema, "notification store migrations applied")
            }
            Err(error) => {
                tracing::error!(schema = ?self.schema, %error, "notification store migrations failed")
            }
        }
        outcome
    }

    /// Closes the pool: waits for connections in use to come back, then closes all.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// `CREATE SCHEMA IF NOT EXISTS` racing another one fails with a unique violation
/// on `pg_namespace` (or `duplicate_schema`): the schema exists, which is the point.
fn created_concurrently(error: &sqlx::Error) -> bool {
    error
        .as_database_error()
        .and_then(|db| db.code())
        .is_some_and(|code| code == "23505" || code == "42P06")
}

fn connect_options(config: &PostgresStoreConfig) -> Result<PgConnectOptions, PostgresStoreError> {
    if !(config.url.starts_with("postgres://") || config.url.starts_with("postgresql://")) {
        return Err(PostgresStoreError::InvalidUrl {
            source: sqlx::Error::Configuration(
                "the URL must start with postgres:// or postgresql://".into(),
            ),
        });
    }
    let mut options = PgConnectOptions::from_str(&config.url)
        .map_err(|source| PostgresStoreError::InvalidUrl { source })?;
    // The config's name, else the URL's (or PGAPPNAME), else ours.
    match &config.application_name {
        Some(name) => options = options.application_name(name),
        None if options.get_application_name().is_none() => {
            options = options.application_name(DEFAULT_APPLICATION_NAME);
        }
        None => {}
    }
    if let Some(schema) = &config.schema {
        check_schema_name(schema)?;
        // A startup parameter: set on every connection the pool opens, before
        // any query, with no extra round trip.
        options = options.options([("search_path", schema.as_str())]);
    }
    if let Some(timeout) = config.statement_timeout {
        options = options.options([("statement_timeout", format!("{}ms", timeout.as_millis()))]);
    }
    Ok(options)
}

fn pool_options(config: &PostgresStoreConfig) -> PgPoolOptions {
    PgPoolOptions::new()
        .max_connections(config.max_connections)
        .min_connections(config.min_connections)
        .acquire_timeout(config.acquire_timeout)
        .idle_timeout(config.idle_timeout)
        .max_lifetime(config.max_lifetime)
}
