//! One module per command.

pub(crate) mod cancel;
pub(crate) mod demo;
pub(crate) mod dlq;
pub(crate) mod inbox;
pub(crate) mod prefs;
pub(crate) mod publish;
pub(crate) mod relay;
pub(crate) mod schedules;
pub(crate) mod serve;
pub(crate) mod stats;
pub(crate) mod suppressions;
pub(crate) mod tail;
pub(crate) mod topics;
pub(crate) mod worker;

/// `text` made safe to print on a terminal: control characters (ESC, CR, BEL,
/// the C1 set, …) and the bidirectional overrides are shown as `\u{…}` escapes
/// (`\n`, `\r`, `\t` for those three), so a message error or a subject cannot
/// move the cursor, retitle the window or hide text. `--json` output is exact
/// and does not use this.
pub(crate) fn terminal_safe(text: &str) -> std::borrow::Cow<'_, str> {
    fn unsafe_char(c: char) -> bool {
        c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
    }
    if !text.chars().any(unsafe_char) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut safe = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\n' => safe.push_str("\\n"),
            '\r' => safe.push_str("\\r"),
            '\t' => safe.push_str("\\t"),
            c if unsafe_char(c) => safe.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => safe.push(c),
        }
    }
    std::borrow::Cow::Owned(safe)
}

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

/// A future that resolves on Ctrl-C (SIGINT) or, on Unix, SIGTERM. The
/// handlers are installed when this is called, not when the future is first
/// polled: call it before announcing readiness, so a signal sent right after
/// the announcement is never met by the default action (the process dying).
pub(crate) fn shutdown_signal() -> impl std::future::Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{Signal, SignalKind, signal};
        let terminate = signal(SignalKind::terminate()).ok();
        let interrupt = signal(SignalKind::interrupt()).ok();
        async fn received(signal: Option<Signal>) {
            match signal {
                Some(mut signal) => {
                    signal.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        }
        async move {
            tokio::select! {
                () = received(terminate) => {}
                () = received(interrupt) => {}
            }
        }
    }
    #[cfg(not(unix))]
    {
        async {
            if tokio::signal::ctrl_c().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::terminal_safe;

    #[test]
    fn terminal_escapes_are_shown_not_obeyed() {
        assert_eq!(terminal_safe("plain text, ünïcode"), "plain text, ünïcode");
        assert_eq!(
            terminal_safe("a\u{1b}[2J\u{1b}]0;pwned\u{7}b\rc\nd"),
            "a\\u{1b}[2J\\u{1b}]0;pwned\\u{7}b\\rc\\nd"
        );
        assert_eq!(
            terminal_safe("\u{9b}31m\u{202e}txt"),
            "\\u{9b}31m\\u{202e}txt"
        );
    }
}
