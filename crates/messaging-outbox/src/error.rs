//! [`OutboxError`]: what writing to the outbox, migrating it and relaying it report.

use messaging_core::MessagingError;
use messaging_model::ValidationError;
use thiserror::Error;

/// An error of the outbox.
///
/// Writing ([`crate::Outbox::publish`] and friends) reports `Validation`,
/// `InvalidOrderingKey` and `InvalidInput` before or instead of storing anything,
/// and `Database` when the statement failed: the caller's transaction is then
/// aborted by PostgreSQL and must be rolled back. [`is_transient`](Self::is_transient)
/// says whether running the whole transaction again may succeed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum OutboxError {
    /// The topic, payload, metadata, `max_retry` or delay was rejected (the
    /// model's rules, the same as `MessagingService::publish_message`'s).
    #[error(transparent)]
    Validation(#[from] ValidationError),
    /// The ordering key is empty, longer than [`crate::MAX_ORDERING_KEY_BYTES`]
    /// or holds a NUL byte.
    #[error("invalid ordering key: {reason}")]
    InvalidOrderingKey {
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The schema name is not a plain lowercase SQL identifier of at most 56 bytes.
    #[error(
        "invalid outbox schema name {schema:?}: expected 1 to 56 characters of [a-z0-9_], not starting with a digit or pg_"
    )]
    InvalidSchemaName {
        /// The rejected name.
        schema: String,
    },
    /// A relay setting is out of range.
    #[error("invalid relay setting: {0}")]
    InvalidConfig(&'static str),
    /// The database refused a value (a NUL byte in a metadata value or in the
    /// payload's text, a timestamp out of range).
    #[error("the database refused the message: {reason}")]
    InvalidInput {
        /// The server's message.
        reason: String,
    },
    /// `DATABASE_URL` is not set.
    #[error(
        "DATABASE_URL is not set: point it at a PostgreSQL database, e.g. postgres://postgres@127.0.0.1:5432/test"
    )]
    MissingDatabaseUrl,
    /// A statement failed (connection lost, outbox table missing, deadlock, …).
    #[error("outbox database error: {source}")]
    Database {
        /// The driver's error.
        #[source]
        source: sqlx::Error,
    },
    /// Applying the outbox migrations failed.
    #[error("outbox migrations failed: {source}")]
    Migrate {
        /// The migrator's error.
        #[source]
        source: sqlx::migrate::MigrateError,
    },
    /// The messaging backend refused or failed a publish of the relay.
    #[error("relaying to the messaging backend failed: {0}")]
    Backend(#[from] MessagingError),
}

impl OutboxError {
    /// True when trying again later may succeed: a lost or refused connection, a
    /// pool timeout, a server shutting down, a serialization failure or deadlock
    /// (SQLSTATE 08, 53, 57P0x, 40001, 40P01), or a backend that is unavailable.
    ///
    /// ```
    /// use messaging_outbox::OutboxError;
    /// assert!(OutboxError::Database { source: sqlx::Error::PoolTimedOut }.is_transient());
    /// assert!(!OutboxError::MissingDatabaseUrl.is_transient());
    /// ```
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Database { source } => is_transient_sqlx(source),
            Self::Backend(MessagingError::Backend(error)) => error.is_transient(),
            _ => false,
        }
    }
}

/// The error of a failed statement: values the database refuses (SQLSTATE class
/// 22, "data exception", and values the driver cannot encode) are `InvalidInput`,
/// everything else is `Database`.
pub(crate) fn database_error(source: sqlx::Error) -> OutboxError {
    if let sqlx::Error::Encode(error) = &source {
        return OutboxError::InvalidInput {
            reason: error.to_string(),
        };
    }
    if let Some(db) = source.as_database_error()
        && db.code().is_some_and(|code| code.starts_with("22"))
    {
        return OutboxError::InvalidInput {
            reason: db.message().to_owned(),
        };
    }
    OutboxError::Database { source }
}

fn is_transient_sqlx(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|code| {
            code.starts_with("08")
                || code.starts_with("53")
                || matches!(
                    code.as_ref(),
                    "57P01" | "57P02" | "57P03" | "57P05" | "40001" | "40P01"
                )
        }),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_and_pool_errors_are_transient() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset");
        assert!(database_error(sqlx::Error::Io(io)).is_transient());
        assert!(database_error(sqlx::Error::PoolClosed).is_transient());
        assert!(!database_error(sqlx::Error::RowNotFound).is_transient());
    }

    #[test]
    fn encode_errors_are_invalid_input() {
        let error = database_error(sqlx::Error::Encode("bad".into()));
        assert!(
            matches!(error, OutboxError::InvalidInput { .. }),
            "{error:?}"
        );
    }
}
