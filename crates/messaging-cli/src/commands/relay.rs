//! `messaging relay`: moves committed outbox rows into the shared Redis backend
//! until SIGTERM or Ctrl-C (see `docs/outbox.md`).

use std::str::FromStr;
use std::sync::Arc;

use messaging_outbox::{Outbox, OutboxError, Relay, RelayConfig};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::cli::RelayArgs;
use crate::exit::CliError;

/// Runs the relay until SIGTERM or Ctrl-C; a round in progress is finished.
pub(crate) async fn run(args: RelayArgs) -> anyhow::Result<()> {
    let Some(url) = args.database.database_url.as_deref() else {
        return Err(CliError::InvalidSetting {
            name: "--database-url".into(),
            reason:
                "relay reads the outbox in PostgreSQL: pass --database-url URL or set DATABASE_URL"
                    .into(),
        }
        .into());
    };
    let schema = args
        .outbox_schema
        .as_deref()
        .or(args.database.db_schema.as_deref());
    let outbox = match schema {
        Some(schema) => Outbox::in_schema(schema).map_err(|error| CliError::InvalidSetting {
            name: "--outbox-schema".into(),
            reason: error.to_string(),
        })?,
        None => Outbox::new(),
    };
    let config = RelayConfig::default()
        .with_batch_size(args.batch_size)
        .with_poll_interval(args.poll_interval)
        .with_retention(args.retention)
        .with_listen(!args.no_listen);
    crate::exit::check_userinfo("--database-url", url)?;
    let options = PgConnectOptions::from_str(url)
        .map_err(|error| CliError::InvalidSetting {
            name: "--database-url".into(),
            reason: format!("{} ({error})", crate::exit::redact(url)),
        })?
        .application_name("messaging-relay");
    let unreachable = |source: sqlx::Error| CliError::Unreachable {
        what: "PostgreSQL",
        url: crate::exit::redact(url),
        source: Box::new(source),
    };
    let pool = PgPoolOptions::new()
        .max_connections(4)
        .acquire_timeout(std::time::Duration::from_secs(5))
        .connect_with(options)
        .await
        .map_err(unreachable)?;
    if args.migrate {
        messaging_outbox::migrate(&pool, &outbox).await?;
    }
    // The table must be there: a relay polling a missing table would only log.
    if let Err(error) = outbox.stats(&pool).await {
        pool.close().await;
        return Err(match error {
            OutboxError::Database { source } if source.as_database_error().is_some() => {
                CliError::InvalidSetting {
                    name: "--outbox-schema".into(),
                    reason: format!(
                        "cannot read {} ({source}); run with --migrate to create it",
                        outbox.table()
                    ),
                }
                .into()
            }
            OutboxError::Database { source } => unreachable(source).into(),
            other => other.into(),
        });
    }
    let service = Arc::new(crate::backend::shared(&args.backend, "relay").await?);
    let relay = Relay::new(
        outbox.clone(),
        pool.clone(),
        service.clone(),
        config.clone(),
    )
    .map_err(|error| CliError::InvalidSetting {
        name: "relay settings".into(),
        reason: error.to_string(),
    })?;
    let shutdown = super::shutdown_signal();
    // Scripts and tests wait for this line.
    eprintln!(
        "relay ready: outbox {}, channel {}, batch {}, poll every {}, retention {}",
        outbox.table(),
        if config.listen {
            outbox.channel()
        } else {
            "off"
        },
        config.batch_size,
        humantime::format_duration(config.poll_interval),
        humantime::format_duration(config.retention),
    );
    let stats = relay.run(shutdown).await;
    pool.close().await;
    eprintln!(
        "relay stopped: published {}, failed {}, rounds {}, errors {}, swept {}",
        stats.published, stats.failed, stats.rounds, stats.errors, stats.swept
    );
    Ok(())
}
