//! Connecting to the messaging backend the arguments name.

use std::sync::Arc;

use messaging_core::{MessageBackend, MessagingService};

use crate::cli::BackendArgs;
use crate::exit::CliError;

/// The key prefix when none is given.
pub(crate) const DEFAULT_KEY_PREFIX: &str = "messaging";

/// The shared backend of a one-shot command: Redis, which must be named.
pub(crate) async fn shared(
    args: &BackendArgs,
    command: &'static str,
) -> anyhow::Result<MessagingService> {
    let Some(url) = args.redis_url.as_deref() else {
        return Err(CliError::NoSharedBackend { command }.into());
    };
    let prefix = args.key_prefix.as_deref().unwrap_or(DEFAULT_KEY_PREFIX);
    let backend = redis(url, prefix).await?;
    Ok(MessagingService::new(backend))
}

/// A Redis backend, checked with a round trip so an unreachable server is
/// reported now (exit code 3), not at the first command.
pub(crate) async fn redis(url: &str, prefix: &str) -> anyhow::Result<Arc<dyn MessageBackend>> {
    let _ = prefix;
    Err(CliError::Unreachable {
        what: "Redis",
        url: crate::exit::redact(url),
        source: "this build has no Redis backend yet (crate messaging-redis)".into(),
    }
    .into())
}
