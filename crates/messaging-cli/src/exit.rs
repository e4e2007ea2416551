//! The exit codes scripts can rely on, and the error type of the binary.
//!
//! | code | meaning |
//! |---|---|
//! | 0 | success |
//! | 1 | any other failure |
//! | 2 | bad usage: unknown flag, malformed JSON, invalid topic, bad configuration |
//! | 3 | a server (Redis, PostgreSQL, SMTP) could not be reached |
//! | 4 | not found: no such topic, dead letter or notification |
//! | 5 | timed out: `tail --timeout` elapsed before `--count` messages arrived |

use std::path::PathBuf;
use std::time::Duration;

use messaging_core::{BackendError, MessagingError};
use messaging_model::ValidationError;
use thiserror::Error;

/// Any other failure.
pub(crate) const OTHER: u8 = 1;
/// Bad usage (clap uses 2 for its own argument errors too).
pub(crate) const USAGE: u8 = 2;
/// A server could not be reached.
pub(crate) const UNREACHABLE: u8 = 3;
/// What was asked for does not exist.
pub(crate) const NOT_FOUND: u8 = 4;
/// A wait with a deadline ran out.
pub(crate) const TIMED_OUT: u8 = 5;

/// Failures the binary itself detects.
#[derive(Debug, Error)]
#[non_exhaustive]
pub(crate) enum CliError {
    /// A command that only makes sense on a backend shared between processes.
    #[error(
        "`{command}` needs the shared Redis backend: pass --redis-url URL or set REDIS_URL \
         (the in-memory backend lives inside one process only; `messaging demo` shows it)"
    )]
    NoSharedBackend {
        /// The command.
        command: &'static str,
    },
    /// The `--json` payload is not JSON.
    #[error("malformed JSON payload: {source}")]
    MalformedJson {
        /// The parser's error.
        #[source]
        source: serde_json::Error,
    },
    /// The configuration file could not be read.
    #[error("cannot read config file {}: {source}", path.display())]
    ConfigRead {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The configuration file is not valid.
    #[error("invalid config file {}: {source}", path.display())]
    ConfigParse {
        /// The file.
        path: PathBuf,
        /// The parser's error.
        #[source]
        source: Box<toml::de::Error>,
    },
    /// A setting (flag, environment variable or config entry) has a bad value.
    #[error("invalid setting {name}: {reason}")]
    InvalidSetting {
        /// The setting.
        name: String,
        /// Why it was refused.
        reason: String,
    },
    /// A server could not be reached.
    #[error("cannot reach {what} at {url}: {source}")]
    Unreachable {
        /// Which server.
        what: &'static str,
        /// Its address, password removed.
        url: String,
        /// The driver's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync + 'static>,
    },
    /// No such topic.
    #[error("topic {topic} not found")]
    TopicNotFound {
        /// The topic.
        topic: String,
    },
    /// No such schedule.
    #[error("schedule {name} not found")]
    ScheduleNotFound {
        /// The schedule's name.
        name: String,
    },
    /// `tail --timeout` ran out.
    #[error("timed out after {} with {received} of {expected} messages", humantime::format_duration(*waited))]
    TailTimedOut {
        /// How long it waited.
        waited: Duration,
        /// Messages printed.
        received: u64,
        /// Messages asked for.
        expected: u64,
    },
    /// `messaging serve` (or `token`) without a key or token it needs.
    #[error(
        "{what} is not set: pass {flag} or set {env} (at least 32 bytes; `openssl rand -hex 32` makes one). \
         The HTTP API has no unauthenticated mode"
    )]
    MissingSecret {
        /// What is missing (`the user token key`).
        what: &'static str,
        /// Its flag.
        flag: &'static str,
        /// Its environment variable.
        env: &'static str,
    },
    /// A destructive command without `--yes`.
    #[error("{what} cannot be undone: add --yes to confirm")]
    ConfirmationRequired {
        /// What would be destroyed.
        what: String,
    },
}

impl CliError {
    fn code(&self) -> u8 {
        match self {
            Self::NoSharedBackend { .. }
            | Self::MalformedJson { .. }
            | Self::ConfigRead { .. }
            | Self::ConfigParse { .. }
            | Self::InvalidSetting { .. }
            | Self::ConfirmationRequired { .. }
            | Self::MissingSecret { .. } => USAGE,
            Self::Unreachable { .. } => UNREACHABLE,
            Self::TopicNotFound { .. } | Self::ScheduleNotFound { .. } => NOT_FOUND,
            Self::TailTimedOut { .. } => TIMED_OUT,
        }
    }
}

fn backend_code(error: &BackendError) -> u8 {
    match error {
        BackendError::Unavailable { .. } => UNREACHABLE,
        BackendError::InvalidConfig { .. }
        | BackendError::InvalidPartitions { .. }
        | BackendError::PartitionsConflict { .. }
        | BackendError::LayoutConflict { .. } => USAGE,
        _ => OTHER,
    }
}

/// The exit code of a failure: the first error of the chain the binary knows.
pub(crate) fn code(error: &anyhow::Error) -> u8 {
    for cause in error.chain() {
        if let Some(error) = cause.downcast_ref::<CliError>() {
            return error.code();
        }
        if let Some(error) = cause.downcast_ref::<MessagingError>() {
            return match error {
                MessagingError::Validation(_) | MessagingError::InvalidOption(_) => USAGE,
                MessagingError::Backend(backend) => backend_code(backend),
                MessagingError::DeadLetterNotFound { .. } => NOT_FOUND,
                _ => OTHER,
            };
        }
        if let Some(error) = cause.downcast_ref::<BackendError>() {
            return backend_code(error);
        }
        if cause.downcast_ref::<ValidationError>().is_some()
            || cause
                .downcast_ref::<messaging_core::schedule::ScheduleError>()
                .is_some()
        {
            return USAGE;
        }
        if cause
            .downcast_ref::<crate::commands::cancel::NotCancelled>()
            .is_some()
        {
            return NOT_FOUND;
        }
        if let Some(error) = cause.downcast_ref::<messaging_http::ServeError>() {
            return match error {
                messaging_http::ServeError::WeakSecret { .. }
                | messaging_http::ServeError::InvalidOrigin { .. } => USAGE,
                _ => OTHER,
            };
        }
        if let Some(code) = crate::commands::store_error_code(cause) {
            return code;
        }
    }
    OTHER
}

/// The error and its causes on one line. Most errors of the suite already
/// include their source in their message, so a cause whose text is already
/// there is not repeated.
pub(crate) fn describe(error: &anyhow::Error) -> String {
    let mut message = String::new();
    for cause in error.chain() {
        let text = cause.to_string();
        if message.contains(&text) {
            continue;
        }
        if !message.is_empty() {
            message.push_str(": ");
        }
        message.push_str(&text);
    }
    message
}

/// True when the failure is stdout closed by its reader (`| head`).
pub(crate) fn is_broken_pipe(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// `url` with any password or token replaced by `***`, for messages and logs
/// (the one redaction of the suite, [`messaging_model::redact_url`]).
pub(crate) fn redact(url: &str) -> String {
    messaging_model::redact_url(url)
}

/// Refuses a URL whose userinfo holds an unencoded `/`, `?` or `#`: such a URL
/// parses as another host (and was once reported as unreachable, with the
/// password in the message). The error shows the URL redacted.
pub(crate) fn check_userinfo(setting: &str, url: &str) -> Result<(), CliError> {
    let Some((_, rest)) = url.split_once("://") else {
        return Ok(());
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let misread = !rest[..authority_end].contains('@')
        && rest
            .rfind('@')
            .is_some_and(|at| at > authority_end && !rest[authority_end..at].contains('='));
    if misread {
        return Err(CliError::InvalidSetting {
            name: setting.to_owned(),
            reason: format!(
                "{}: the user name or password holds '/', '?' or '#'; percent-encode them (%2F, %3F, %23)",
                redact(url)
            ),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_redacted_from_urls() {
        assert_eq!(
            redact("redis://:secret@host:6379/0"),
            "redis://:***@host:6379/0"
        );
        assert_eq!(
            redact("postgres://app:pw@db/test?sslmode=disable"),
            "postgres://app:***@db/test?sslmode=disable"
        );
        assert_eq!(redact("redis://127.0.0.1:6379"), "redis://127.0.0.1:6379");
        assert_eq!(
            redact("postgres://postgres@h/db"),
            "postgres://postgres@h/db"
        );
        assert_eq!(redact("not a url"), "not a url");
        assert_eq!(
            redact("redis://app:Zx9/Qm+kL2@127.0.0.1:6379/0"),
            "redis://app:***@127.0.0.1:6379/0"
        );
    }

    #[test]
    fn unencoded_reserved_characters_in_a_password_are_a_usage_error() {
        let error =
            check_userinfo("--redis-url", "redis://app:Zx9/Qm+kL2@127.0.0.1:6379/0").unwrap_err();
        assert_eq!(error.code(), USAGE);
        assert!(!error.to_string().contains("Zx9"), "{error}");
        assert!(check_userinfo("--redis-url", "redis://app:Zx9%2FQm@127.0.0.1:6379/0").is_ok());
        assert!(check_userinfo("--database-url", "postgres://u@h/d?x=a@b").is_ok());
        assert!(
            check_userinfo("--database-url", "postgres://h:5432/d?application_name=a@b").is_ok()
        );
        assert!(check_userinfo("--redis-url", "redis://127.0.0.1:6379").is_ok());
    }

    #[test]
    fn causes_already_in_the_message_are_not_repeated() {
        let error = anyhow::Error::new(CliError::Unreachable {
            what: "Redis",
            url: "redis://h:1".into(),
            source: Box::new(BackendError::unavailable(std::io::Error::other("refused"))),
        })
        .context("reading the stats");
        assert_eq!(
            describe(&error),
            "reading the stats: cannot reach Redis at redis://h:1: backend unavailable: refused"
        );
    }

    #[test]
    fn errors_map_to_documented_codes() {
        let unreachable = anyhow::Error::new(MessagingError::Backend(BackendError::unavailable(
            std::io::Error::other("refused"),
        )));
        assert_eq!(code(&unreachable), UNREACHABLE);
        let missing = anyhow::Error::new(MessagingError::DeadLetterNotFound {
            topic: "a".into(),
            id: "1".into(),
        })
        .context("replaying");
        assert_eq!(code(&missing), NOT_FOUND);
        let bad = anyhow::Error::new(messaging_model::validate_topic("a b").unwrap_err());
        assert_eq!(code(&bad), USAGE);
        assert_eq!(code(&anyhow::anyhow!("something else")), OTHER);
    }
}
