//! Errors of setting the store up, and the mapping of driver errors to [`StoreError`].

use notification_store::StoreError;
use sqlx::error::ErrorKind;
use thiserror::Error;

/// Setting up a [`crate::PostgresStore`] failed: configuration, connection or
/// migrations. The store's queries report [`StoreError`] instead.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum PostgresStoreError {
    /// `DATABASE_URL` is not set (from [`crate::PostgresStoreConfig::from_env`]).
    #[error(
        "DATABASE_URL is not set: point it at a PostgreSQL database, e.g. postgres://postgres@127.0.0.1:5432/test"
    )]
    MissingDatabaseUrl,
    /// The connection URL could not be parsed.
    #[error("invalid PostgreSQL URL: {source}")]
    InvalidUrl {
        /// The driver's parse error.
        #[source]
        source: sqlx::Error,
    },
    /// The schema name is not a plain lowercase SQL identifier.
    #[error(
        "invalid schema name {schema:?}: expected 1 to 63 characters of [a-z0-9_], not starting with a digit or pg_"
    )]
    InvalidSchemaName {
        /// The rejected name.
        schema: String,
    },
    /// [`crate::PostgresStore::connect_lazy`] was called outside a Tokio runtime
    /// (the pool spawns its maintenance tasks on it).
    #[error("no Tokio runtime: call connect_lazy from within one")]
    NoRuntime,
    /// The database could not be reached (or refused the connection).
    #[error("cannot connect to PostgreSQL: {source}")]
    Connect {
        /// The driver's error.
        #[source]
        source: sqlx::Error,
    },
    /// Creating the schema failed.
    #[error("cannot create schema {schema:?}: {source}")]
    CreateSchema {
        /// The schema.
        schema: String,
        /// The driver's error.
        #[source]
        source: sqlx::Error,
    },
    /// Applying the migrations failed.
    #[error("migrations failed: {source}")]
    Migrate {
        /// The migrator's error.
        #[source]
        source: sqlx::migrate::MigrateError,
    },
    /// A stored row holds a value the model does not know (a column edited by hand).
    #[error("column {column} holds unknown value {value:?}")]
    UnknownValue {
        /// The column.
        column: &'static str,
        /// The value found.
        value: String,
    },
}

/// Maps a driver error to the store's error kinds.
///
/// * unique violations are [`StoreError::Conflict`];
/// * values the database refuses (check and not-null violations, SQLSTATE class 22
///   "data exception": out-of-range timestamps, NUL bytes in text) and values the
///   driver cannot encode are [`StoreError::InvalidInput`];
/// * connection, pool and server-shutdown errors are [`StoreError::Unavailable`];
/// * anything else is [`StoreError::Query`].
pub(crate) fn store_error(error: sqlx::Error) -> StoreError {
    match &error {
        sqlx::Error::Database(db) => {
            let code = db.code();
            let code = code.as_deref().unwrap_or("");
            match db.kind() {
                ErrorKind::UniqueViolation => {
                    let constraint = db.constraint().unwrap_or("unique constraint");
                    let detail = db
                        .try_downcast_ref::<sqlx::postgres::PgDatabaseError>()
                        .and_then(|pg| pg.detail())
                        .unwrap_or_else(|| db.message());
                    return StoreError::Conflict {
                        what: format!("{constraint}: {detail}"),
                    };
                }
                ErrorKind::CheckViolation | ErrorKind::NotNullViolation => {
                    return StoreError::InvalidInput {
                        reason: db.message().to_owned(),
                    };
                }
                _ => {}
            }
            if code.starts_with("22") {
                StoreError::InvalidInput {
                    reason: db.message().to_owned(),
                }
            } else if is_unavailable_code(code) {
                StoreError::Unavailable {
                    source: Box::new(error),
                }
            } else {
                StoreError::Query {
                    source: Box::new(error),
                }
            }
        }
        sqlx::Error::Encode(source) => StoreError::InvalidInput {
            reason: source.to_string(),
        },
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => StoreError::Unavailable {
            source: Box::new(error),
        },
        _ => StoreError::Query {
            source: Box::new(error),
        },
    }
}

/// SQLSTATEs after which retrying later may work: connection exceptions (08),
/// insufficient resources (53, e.g. too many connections), operator intervention
/// (57P01-57P05: shutdown, crash recovery, cannot connect now) and serialization
/// or deadlock failures (40001, 40P01).
fn is_unavailable_code(code: &str) -> bool {
    code.starts_with("08")
        || code.starts_with("53")
        || matches!(
            code,
            "57P01" | "57P02" | "57P03" | "57P05" | "40001" | "40P01"
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_and_io_errors_are_transient() {
        assert!(store_error(sqlx::Error::PoolTimedOut).is_transient());
        assert!(store_error(sqlx::Error::PoolClosed).is_transient());
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        assert!(store_error(sqlx::Error::Io(io)).is_transient());
    }

    #[test]
    fn encode_errors_are_invalid_input() {
        let error = store_error(sqlx::Error::Encode("out of range".into()));
        assert!(matches!(error, StoreError::InvalidInput { .. }));
    }

    #[test]
    fn retryable_sqlstates() {
        for code in ["08006", "53300", "57P01", "40001"] {
            assert!(is_unavailable_code(code), "{code}");
        }
        for code in ["42P01", "23505", "22008", ""] {
            assert!(!is_unavailable_code(code), "{code}");
        }
    }
}
