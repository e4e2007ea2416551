//! Connecting to the messaging backend the arguments name.

use std::sync::Arc;
use std::time::Duration;

use messaging_core::{BackendAdmin, BackendError, MessagingService, Partitioned};
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
    let backend: Arc<dyn messaging_core::Backend> = shared_redis(args, command).await?;
    Ok(MessagingService::new(backend))
}

/// A Redis backend, checked with a round trip so an unreachable server is
/// reported now (exit code 3), not at the first command; its partitioned
/// topics routed by [`Partitioned`].
pub(crate) async fn redis(
    url: &str,
    prefix: &str,
) -> anyhow::Result<Arc<dyn messaging_core::Backend>> {
    Ok(Arc::new(Partitioned::from_arc(
        redis_backend(url, prefix).await?,
    )))
}

/// The shared Redis backend of a one-shot command, as its concrete type (for
/// what is not on `MessageBackend`, such as schedules), partitioned topics
/// routed.
pub(crate) async fn shared_redis(
    args: &BackendArgs,
    command: &'static str,
) -> anyhow::Result<Arc<Partitioned<RedisBackend>>> {
    let Some(url) = args.redis_url.as_deref() else {
        return Err(CliError::NoSharedBackend { command }.into());
    };
    let prefix = args.key_prefix.as_deref().unwrap_or(DEFAULT_KEY_PREFIX);
    Ok(Arc::new(Partitioned::from_arc(
        redis_backend(url, prefix).await?,
    )))
}

/// [`redis`], as the concrete type.
pub(crate) async fn redis_backend(url: &str, prefix: &str) -> anyhow::Result<Arc<RedisBackend>> {
    crate::exit::check_userinfo("--redis-url", url)?;
    // The driver retries a refused connection for several seconds; a command
    // line should say at once that nothing listens there.
    if let Some(addr) = host_port(url)
        && let Err(source) = reachable(&addr).await
    {
        return Err(CliError::Unreachable {
            what: "Redis",
            url: crate::exit::redact(url),
            source: Box::new(source),
        }
        .into());
    }
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

/// `host:port` of a `redis://` or `rediss://` URL, when it has a plain one.
fn host_port(url: &str) -> Option<String> {
    let rest = url
        .strip_prefix("redis://")
        .or_else(|| url.strip_prefix("rediss://"))?;
    let authority = rest.split(['/', '?', '#']).next()?;
    let host_port = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    if host_port.is_empty() {
        return None;
    }
    if host_port.starts_with('[') {
        // [v6]:port or [v6]
        return Some(if host_port.ends_with(']') {
            format!("{host_port}:6379")
        } else {
            host_port.to_owned()
        });
    }
    Some(if host_port.contains(':') {
        host_port.to_owned()
    } else {
        format!("{host_port}:6379")
    })
}

/// Opens (and closes) one TCP connection within two seconds.
async fn reachable(addr: &str) -> std::io::Result<()> {
    match tokio::time::timeout(Duration::from_secs(2), tokio::net::TcpStream::connect(addr)).await {
        Ok(connected) => connected.map(drop),
        Err(_) => Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!("no answer from {addr} within 2 s"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_address_of_redis_urls() {
        assert_eq!(
            host_port("redis://127.0.0.1:6379/0").as_deref(),
            Some("127.0.0.1:6379")
        );
        assert_eq!(
            host_port("rediss://user:pw@cache.internal").as_deref(),
            Some("cache.internal:6379")
        );
        assert_eq!(
            host_port("redis://[::1]:7000").as_deref(),
            Some("[::1]:7000")
        );
        assert_eq!(host_port("redis+unix:///tmp/redis.sock"), None);
        assert_eq!(host_port("redis:///0"), None);
    }
}
