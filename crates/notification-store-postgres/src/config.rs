//! How to reach the database: [`PostgresStoreConfig`].

use std::fmt;
use std::time::Duration;

use crate::{GroupCommitConfig, PostgresStoreError};

/// `application_name` of the store's connections when neither the config nor the
/// URL sets one.
pub(crate) const DEFAULT_APPLICATION_NAME: &str = "notification-store";

/// The URL used when none is given: the local server, database `postgres`.
pub const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// Connection settings of a [`crate::PostgresStore`].
///
/// TLS is chosen in the URL with `sslmode` (`disable`, `prefer` (the default),
/// `require`, `verify-ca`, `verify-full`) and `sslrootcert=/path/ca.pem`, as with
/// libpq; see `docs/postgres.md`.
///
/// ```
/// use std::time::Duration;
/// use notification_store_postgres::PostgresStoreConfig;
///
/// let config = PostgresStoreConfig::new("postgres://app@db.internal/app?sslmode=verify-full")
///     .with_schema("notifications")
///     .with_max_connections(20)
///     .with_acquire_timeout(Duration::from_secs(2))
///     .with_statement_timeout(Duration::from_secs(5));
/// assert_eq!(config.schema.as_deref(), Some("notifications"));
/// ```
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PostgresStoreConfig {
    /// `postgres://user:password@host:port/database?sslmode=...`.
    pub url: String,
    /// The schema the store's tables live in (set as `search_path` on every
    /// connection); `None` keeps the server's default (`public`).
    pub schema: Option<String>,
    /// Most connections the pool opens.
    pub max_connections: u32,
    /// Connections the pool keeps open when idle.
    pub min_connections: u32,
    /// How long a query waits for a free connection before
    /// [`notification_store::StoreError::Unavailable`].
    pub acquire_timeout: Duration,
    /// Idle connections above `min_connections` are closed after this long.
    pub idle_timeout: Option<Duration>,
    /// Connections are replaced after this long.
    pub max_lifetime: Option<Duration>,
    /// The server cancels a statement running longer than this.
    pub statement_timeout: Option<Duration>,
    /// Shown in `pg_stat_activity`; `None`: the URL's `application_name`, else
    /// `notification-store`.
    pub application_name: Option<String>,
    /// Commit the writes of concurrent senders together (see
    /// [`GroupCommitConfig`]); `None`: one commit per write.
    pub group_commit: Option<GroupCommitConfig>,
}

impl Default for PostgresStoreConfig {
    fn default() -> Self {
        Self {
            url: DEFAULT_DATABASE_URL.to_owned(),
            schema: None,
            max_connections: 10,
            min_connections: 0,
            acquire_timeout: Duration::from_secs(5),
            idle_timeout: Some(Duration::from_secs(600)),
            max_lifetime: Some(Duration::from_secs(1800)),
            statement_timeout: None,
            application_name: None,
            group_commit: Some(GroupCommitConfig::default()),
        }
    }
}

impl PostgresStoreConfig {
    /// The defaults with this URL.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            ..Self::default()
        }
    }

    /// The defaults with the URL from the `DATABASE_URL` environment variable.
    pub fn from_env() -> Result<Self, PostgresStoreError> {
        match std::env::var("DATABASE_URL") {
            Ok(url) if !url.trim().is_empty() => Ok(Self::new(url)),
            _ => Err(PostgresStoreError::MissingDatabaseUrl),
        }
    }

    /// Sets the URL.
    pub fn with_url(mut self, url: impl Into<String>) -> Self {
        self.url = url.into();
        self
    }

    /// Keeps the tables in `schema` (a lowercase identifier, checked on connect):
    /// every pooled connection gets `search_path` set to it, and
    /// [`crate::PostgresStore::migrate`] creates it when missing.
    pub fn with_schema(mut self, schema: impl Into<String>) -> Self {
        self.schema = Some(schema.into());
        self
    }

    /// Sets the most connections the pool opens.
    pub fn with_max_connections(mut self, max: u32) -> Self {
        self.max_connections = max;
        self
    }

    /// Sets how many connections the pool keeps open when idle.
    pub fn with_min_connections(mut self, min: u32) -> Self {
        self.min_connections = min;
        self
    }

    /// Sets how long a query waits for a free connection.
    pub fn with_acquire_timeout(mut self, timeout: Duration) -> Self {
        self.acquire_timeout = timeout;
        self
    }

    /// Sets (or, with `None`, removes) the idle timeout.
    pub fn with_idle_timeout(mut self, timeout: impl Into<Option<Duration>>) -> Self {
        self.idle_timeout = timeout.into();
        self
    }

    /// Sets (or, with `None`, removes) the connection lifetime.
    pub fn with_max_lifetime(mut self, lifetime: impl Into<Option<Duration>>) -> Self {
        self.max_lifetime = lifetime.into();
        self
    }

    /// Sets (or, with `None`, removes) the server-side statement timeout.
    pub fn with_statement_timeout(mut self, timeout: impl Into<Option<Duration>>) -> Self {
        self.statement_timeout = timeout.into();
        self
    }

    /// Sets (or, with `None`, turns off) the grouping of concurrent writes.
    pub fn with_group_commit(mut self, group_commit: impl Into<Option<GroupCommitConfig>>) -> Self {
        self.group_commit = group_commit.into();
        self
    }

    /// Sets the application name shown in `pg_stat_activity`.
    pub fn with_application_name(mut self, name: impl Into<String>) -> Self {
        self.application_name = Some(name.into());
        self
    }
}

/// Hides the password of the URL.
impl fmt::Debug for PostgresStoreConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresStoreConfig")
            .field("url", &redact_password(&self.url))
            .field("schema", &self.schema)
            .field("max_connections", &self.max_connections)
            .field("min_connections", &self.min_connections)
            .field("acquire_timeout", &self.acquire_timeout)
            .field("idle_timeout", &self.idle_timeout)
            .field("max_lifetime", &self.max_lifetime)
            .field("statement_timeout", &self.statement_timeout)
            .field("application_name", &self.application_name)
            .field("group_commit", &self.group_commit)
            .finish()
    }
}

/// `postgres://user:secret@host/db` becomes `postgres://user:***@host/db`, and
/// `?password=secret` becomes `?password=***` ([`messaging_model::redact_url`]).
pub(crate) fn redact_password(url: &str) -> String {
    messaging_model::redact_url(url)
}

/// Checks a schema name: 1 to 63 bytes of `[a-z0-9_]`, not starting with a digit
/// or `pg_` (reserved by PostgreSQL). Such a name needs no quoting anywhere.
pub(crate) fn check_schema_name(schema: &str) -> Result<(), PostgresStoreError> {
    let valid = !schema.is_empty()
        && schema.len() <= 63
        && !schema.starts_with(|c: char| c.is_ascii_digit())
        && !schema.starts_with("pg_")
        && schema
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if valid {
        Ok(())
    } else {
        Err(PostgresStoreError::InvalidSchemaName {
            schema: schema.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_the_password() {
        let config = PostgresStoreConfig::new("postgres://app:s3cret@db:5432/app?sslmode=require");
        let shown = format!("{config:?}");
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(
            shown.contains("postgres://app:***@db:5432/app?sslmode=require"),
            "{shown}"
        );
    }

    #[test]
    fn urls_without_password_are_shown_as_is() {
        for url in [
            "postgres://postgres@127.0.0.1/test",
            "postgres://localhost/x",
            "garbage",
        ] {
            assert_eq!(redact_password(url), url);
        }
        assert_eq!(
            redact_password("postgres://u:p@ss@h/d"),
            "postgres://u:***@h/d",
            "the last @ ends the userinfo"
        );
        assert_eq!(
            redact_password("postgres://db/app?user=app&password=s3cret"),
            "postgres://db/app?user=app&password=***"
        );
    }

    #[test]
    fn schema_names_are_plain_identifiers() {
        for good in ["notifications", "t_0123abc", "_x"] {
            check_schema_name(good).unwrap();
        }
        let too_long = "a".repeat(64);
        for bad in [
            "",
            "Upper",
            "with space",
            "semi;colon",
            "1abc",
            "pg_temp",
            "a\"b",
            &too_long,
        ] {
            assert!(check_schema_name(bad).is_err(), "{bad:?}");
        }
    }
}
