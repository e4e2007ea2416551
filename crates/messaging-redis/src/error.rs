use std::sync::Arc;
use std::time::Duration;

use messaging_core::BackendError;
use redis::{ErrorKind, RedisError, ServerErrorKind};

/// A publish (or schedule) that the primary wrote but fewer replicas than
/// [`crate::RedisBackendConfig::with_replica_acks`] asks for acknowledged
/// within its timeout: `BackendError::Unavailable` with this as its source
/// (find it with `std::error::Error::source` and `downcast_ref`).
///
/// The message is on the primary: it is delivered unless the primary fails
/// over before a replica has it, so retrying may publish it twice (what
/// at-least-once delivery allows) but never loses what the first call wrote.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "topic {topic}: {acknowledged} of {required} replicas acknowledged the write within {timeout:?}; it is on the primary only and a failover may lose it"
)]
#[non_exhaustive]
pub struct NotReplicated {
    /// The topic written to.
    pub topic: String,
    /// The replicas asked for.
    pub required: usize,
    /// The replicas that acknowledged in time.
    pub acknowledged: usize,
    /// How long the primary waited for them.
    pub timeout: Duration,
    /// For `publish_batch`: how many messages of the call, from the first,
    /// were written (and replicated) before this run of one topic.
    pub written: usize,
}

/// Whether `error` is a write the primary made but too few replicas acknowledged.
pub(crate) fn is_not_replicated(error: &BackendError) -> bool {
    std::error::Error::source(error).is_some_and(|source| source.is::<NotReplicated>())
}

/// A cluster redirection or `TRYAGAIN` that reached the caller: the command
/// was not run (its slot is moving or just moved). The cluster client follows
/// `MOVED` and `ASK` itself, but `ASK`'s one-shot `ASKING` can be taken by
/// another command on the same multiplexed connection, and its retries run
/// out; running the command again is safe and soon works.
pub(crate) fn is_redirection(error: &RedisError) -> bool {
    matches!(
        error.kind(),
        ErrorKind::Server(
            ServerErrorKind::Ask | ServerErrorKind::Moved | ServerErrorKind::TryAgain
        )
    ) || matches!(error.code(), Some("ASK" | "MOVED" | "TRYAGAIN"))
}

/// Maps a driver error: connection trouble and a server that cannot serve right
/// now (loading, failing over, out of memory) are transient, the rest is a
/// command the server refused.
pub(crate) fn backend_error(error: RedisError) -> BackendError {
    if is_transient(&error) {
        BackendError::unavailable(error)
    } else {
        BackendError::command(error)
    }
}

/// The same, for one driver error shared by several callers (a batch of acks).
pub(crate) fn shared_backend_error(error: &Arc<RedisError>) -> BackendError {
    let shared = SharedError(error.clone());
    if is_transient(error) {
        BackendError::unavailable(shared)
    } else {
        BackendError::command(shared)
    }
}

/// A driver error several results point to.
#[derive(Debug)]
struct SharedError(Arc<RedisError>);

impl std::fmt::Display for SharedError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for SharedError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}

fn is_transient(error: &RedisError) -> bool {
    if refused_credentials(error) {
        return false;
    }
    if is_redirection(error) {
        return true;
    }
    if error.is_io_error()
        || error.is_connection_dropped()
        || error.is_connection_refusal()
        || error.is_timeout()
    {
        return true;
    }
    matches!(
        error.kind(),
        ErrorKind::Server(
            ServerErrorKind::BusyLoading
                | ServerErrorKind::TryAgain
                | ServerErrorKind::ClusterDown
                | ServerErrorKind::MasterDown
                | ServerErrorKind::ReadOnly
        )
    ) || matches!(
        error.code(),
        Some("OOM" | "LOADING" | "MASTERDOWN" | "NOREPLICAS" | "BUSY" | "READONLY")
    )
}

/// The server refused the user or password. The cluster client reports a
/// refusal by every seed node as an I/O error ("Failed to create initial
/// connections") naming the refusal only in its text, which is read here so a
/// wrong password is not retried as if the cluster were down.
fn refused_credentials(error: &RedisError) -> bool {
    if error.kind() == ErrorKind::AuthenticationFailed {
        return true;
    }
    let text = error.to_string();
    text.contains("AuthenticationFailed")
        || text.contains("WRONGPASS")
        || text.contains("invalid username-password")
}

/// The group (or its stream) does not exist: the topic was deleted meanwhile.
pub(crate) fn is_no_group(error: &RedisError) -> bool {
    error.code() == Some("NOGROUP") || error.to_string().contains("NOGROUP")
}

/// A blocked read was released because its stream was deleted.
pub(crate) fn is_unblocked(error: &RedisError) -> bool {
    error.code() == Some("UNBLOCKED")
}

/// `XGROUP CREATE` of a group that exists.
pub(crate) fn is_busy_group(error: &RedisError) -> bool {
    error.code() == Some("BUSYGROUP")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_errors_are_transient() {
        let refused: RedisError =
            std::io::Error::from(std::io::ErrorKind::ConnectionRefused).into();
        assert!(backend_error(refused).is_transient());
        let reset: RedisError = std::io::Error::from(std::io::ErrorKind::ConnectionReset).into();
        assert!(backend_error(reset).is_transient());
        let timeout: RedisError = std::io::Error::from(std::io::ErrorKind::TimedOut).into();
        assert!(backend_error(timeout).is_transient());
    }

    #[test]
    fn redirections_that_reach_the_caller_are_transient() {
        for kind in [
            ServerErrorKind::Ask,
            ServerErrorKind::Moved,
            ServerErrorKind::TryAgain,
        ] {
            let error: RedisError = (ErrorKind::Server(kind), "redirected").into();
            assert!(is_redirection(&error), "{error:?}");
            assert!(backend_error(error).is_transient());
        }
        let refused: RedisError = (ErrorKind::UnexpectedReturnType, "wrong type").into();
        assert!(!is_redirection(&refused));
    }

    #[test]
    fn refused_commands_are_not_transient() {
        let wrong: RedisError = (ErrorKind::UnexpectedReturnType, "wrong type").into();
        assert!(!backend_error(wrong).is_transient());
    }

    #[test]
    fn refused_credentials_are_not_transient_even_wrapped_as_io() {
        let refused: RedisError = (
            ErrorKind::AuthenticationFailed,
            "Password authentication failed",
        )
            .into();
        assert!(!backend_error(refused).is_transient());
        // How the cluster client reports it when every seed node refused.
        let wrapped: RedisError = (
            ErrorKind::Io,
            "Failed to create initial connections",
            "Io: Password authentication failed - AuthenticationFailed".to_owned(),
        )
            .into();
        assert!(!backend_error(wrapped).is_transient());
        let down: RedisError = (
            ErrorKind::Io,
            "Failed to create initial connections",
            "Io: Connection refused (os error 111)".to_owned(),
        )
            .into();
        assert!(backend_error(down).is_transient());
    }
}
