//! Connecting to the messaging backend the arguments name.

use std::sync::Arc;

use messaging_core::{BackendError, MessageBackend, MessagingService};
use messaging_redis::{RedisBackend, RedisBackendConfig};

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
    let config = RedisBackendConfig::new(url).with_key_prefix(prefix);
    let unreachable = |source: BackendError| CliError::Unreachable {
        what: "Redis",
        url: crate::exit::redact(url),
        source: Box::new(source),
    };
    let backend = match RedisBackend::connect(config).await {
        Ok(backend) => backend,
        Err(error) if error.is_transient() => return Err(unreachable(error).into()),
        Err(error) => {
            return Err(CliError::InvalidSetting {
                name: "--redis-url".into(),
                reason: format!("{} ({error})", crate::exit::redact(url)),
            }
            .into());
        }
    };
    match backend.health().await {
        Ok(_) => Ok(Arc::new(backend)),
        Err(error) if error.is_transient() => Err(unreachable(error).into()),
        Err(error) => Err(error.into()),
    }
}
