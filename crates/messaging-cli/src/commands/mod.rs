//! One module per command.

pub(crate) mod demo;
pub(crate) mod dlq;
pub(crate) mod inbox;
pub(crate) mod publish;
pub(crate) mod stats;
pub(crate) mod tail;
pub(crate) mod topics;
pub(crate) mod worker;

/// The exit code of a notification store error, when `cause` is one.
pub(crate) fn store_error_code(cause: &(dyn std::error::Error + 'static)) -> Option<u8> {
    use crate::exit::{NOT_FOUND, OTHER, UNREACHABLE, USAGE};
    use notification::NotificationError;
    use notification::store::StoreError;
    if let Some(error) = cause.downcast_ref::<StoreError>() {
        return Some(match error {
            StoreError::NotFound { .. } => NOT_FOUND,
            StoreError::InvalidInput { .. } => USAGE,
            StoreError::Unavailable { .. } => UNREACHABLE,
            _ => OTHER,
        });
    }
    if let Some(error) = cause.downcast_ref::<NotificationError>()
        && error.is_transient()
    {
        return Some(UNREACHABLE);
    }
    None
}

/// Resolves on Ctrl-C (SIGINT) or, on Unix, SIGTERM.
pub(crate) async fn shutdown_signal() {
    let interrupt = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {}
        () = terminate => {}
    }
}
