//! `messaging worker`: the notification event listeners and the notification
//! request dispatchers, a Prometheus endpoint, and a graceful stop.

use std::sync::Arc;

use anyhow::Context;
use messaging_core::{InMemoryBackend, MessagingService, SubscribeOptions};
use tokio::sync::watch;

use crate::cli::WorkerArgs;
use crate::config::Config;

/// Runs the worker until SIGTERM or Ctrl-C.
pub(crate) async fn run(args: WorkerArgs) -> anyhow::Result<()> {
    let config = load(&args)?;
    if let Some(addr) = config.metrics_addr()? {
        crate::metrics::install_exporter(addr)?;
        eprintln!("metrics on http://{addr}/metrics");
    }
    let backend: Arc<dyn messaging_core::Backend> = match &config.backend.redis_url {
        Some(url) => {
            let prefix = config
                .backend
                .key_prefix
                .as_deref()
                .unwrap_or(crate::backend::DEFAULT_KEY_PREFIX);
            crate::backend::redis(url, prefix).await?
        }
        None => {
            tracing::warn!(
                "no Redis URL: using the in-memory backend, lost on exit and private to this process"
            );
            Arc::new(messaging_core::Partitioned::new(InMemoryBackend::new()))
        }
    };
    let service = Arc::new(
        MessagingService::new(backend)
            .with_subscribe_defaults(subscribe_options(&config))
            .with_max_retry(config.retry.max_retry)?,
    );
    let health = service.health().await.context("checking the backend")?;
    for warning in &health.warnings {
        tracing::warn!(backend = health.backend, "{warning}");
    }

    if config.database.url.is_none() {
        tracing::warn!("no database URL: notifications are kept in memory and lost on exit");
    }
    let pipeline = crate::pipeline::Pipeline::from_config(&config).await?;
    if let Some(smtp) = &config.smtp {
        check_smtp(smtp).await;
    }
    pipeline
        .attach_limited(&service, subscribe_options(&config), &config)
        .await?;

    let (stop, stopped) = watch::channel(false);
    let gauges = tokio::spawn(crate::metrics::poll_topic_gauges(
        service.clone(),
        config.worker.stats_interval,
        stopped,
    ));
    let subscriptions = service.subscriptions().await;
    let shutdown = super::shutdown_signal();
    // Scripts and tests wait for this line.
    eprintln!(
        "worker ready: backend {}, group {}, {} subscriptions",
        health.backend,
        config.worker.group,
        subscriptions.len()
    );

    shutdown.await;
    eprintln!(
        "stopping: finishing running handlers (at most {})",
        humantime::format_duration(config.worker.shutdown_timeout)
    );
    let _ = stop.send(true);
    service.shutdown().await;
    let _ = gauges.await;
    pipeline.close().await;
    eprintln!("worker stopped");
    Ok(())
}

/// Warns when the SMTP server does not answer now. Not fatal: emails are
/// retried with backoff, and the server may come back before they run out.
async fn check_smtp(smtp: &crate::config::SmtpConfig) {
    let port = smtp.port.unwrap_or(smtp.security.default_port());
    let addr = format!("{}:{port}", smtp.host);
    let connect = tokio::net::TcpStream::connect(addr.as_str());
    match tokio::time::timeout(std::time::Duration::from_secs(2), connect).await {
        Ok(Ok(_)) => {}
        Ok(Err(error)) => {
            tracing::warn!(%addr, %error, "the SMTP server does not answer; emails will be retried")
        }
        Err(_) => {
            tracing::warn!(%addr, "the SMTP server does not answer within 2 s; emails will be retried")
        }
    }
}

/// The file, then the environment, then the flags.
pub(crate) fn load(args: &WorkerArgs) -> anyhow::Result<Config> {
    let mut config = match &args.config {
        Some(path) => Config::from_file(path)?,
        None => Config::default(),
    };
    config.apply_env(|name| std::env::var(name).ok())?;
    // clap already folded REDIS_URL, DATABASE_URL, … into these.
    if let Some(url) = &args.backend.redis_url {
        config.backend.redis_url = Some(url.clone());
    }
    if let Some(prefix) = &args.backend.key_prefix {
        config.backend.key_prefix = Some(prefix.clone());
    }
    if let Some(url) = &args.database.database_url {
        config.database.url = Some(url.clone());
    }
    if let Some(schema) = &args.database.db_schema {
        config.database.schema = Some(schema.clone());
    }
    if let Some(addr) = args.metrics_addr {
        config.worker.metrics_addr = Some(addr.to_string());
    }
    if args.no_metrics {
        config.worker.metrics_addr = None;
    }
    if let Some(concurrency) = args.concurrency {
        config.worker.concurrency = concurrency;
    }
    if let Some(consumer) = &args.consumer {
        config.worker.consumer = Some(consumer.clone());
    }
    config.check()?;
    Ok(config)
}

/// The subscription options every listener of the worker uses.
pub(crate) fn subscribe_options(config: &Config) -> SubscribeOptions {
    let consumer = config.worker.consumer.clone().unwrap_or_else(|| {
        let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "worker".into());
        format!("{host}-{}", std::process::id())
    });
    SubscribeOptions::new(config.worker.group.clone())
        .with_consumer(consumer)
        .with_concurrency(config.worker.concurrency)
        .with_visibility_timeout(config.worker.visibility_timeout)
        .with_shutdown_timeout(config.worker.shutdown_timeout)
        .with_retry(config.retry.policy())
        .with_max_retries(config.retry.handler_max_retry)
        .with_max_retry_delay(config.retry.max_retry_delay)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{BackendArgs, DatabaseArgs};

    #[test]
    fn flags_override_the_config_file() {
        let path =
            std::env::temp_dir().join(format!("messaging-worker-test-{}.toml", std::process::id()));
        std::fs::write(
            &path,
            "[backend]\nredis_url = \"redis://from-file:6379\"\nkey_prefix = \"file\"\n\n[worker]\nconcurrency = 3\nconsumer = \"replica-a\"\n",
        )
        .unwrap();
        let args = WorkerArgs {
            config: Some(path.clone()),
            backend: BackendArgs {
                redis_url: Some("redis://from-flag:6379".into()),
                key_prefix: None,
            },
            database: DatabaseArgs {
                database_url: None,
                db_schema: Some("tenant_a".into()),
            },
            metrics_addr: None,
            no_metrics: true,
            concurrency: Some(5),
            consumer: None,
        };
        let config = load(&args).unwrap();
        std::fs::remove_file(&path).unwrap();
        assert_eq!(
            config.backend.redis_url.as_deref(),
            Some("redis://from-flag:6379")
        );
        assert_eq!(config.backend.key_prefix.as_deref(), Some("file"));
        assert_eq!(config.database.schema.as_deref(), Some("tenant_a"));
        assert_eq!(config.worker.concurrency, 5);
        assert_eq!(config.metrics_addr().unwrap(), None);
        let options = subscribe_options(&config);
        assert_eq!(
            (options.group.as_str(), options.consumer.as_str()),
            ("notification", "replica-a")
        );
        assert_eq!(options.concurrency, 5);
    }
}
