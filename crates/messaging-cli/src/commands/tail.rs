//! `messaging tail TOPIC [--count N] [--timeout D] [--json]`.
//!
//! Tail reads through a consumer group of its own, created at the end of the
//! stream ([`StartFrom::Latest`]) and deleted on exit, so it sees every new
//! message without taking any from the groups doing the work.

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use messaging_core::{ConsumerId, Delivery, ReadOptions, StartFrom, TARGET_GROUP_KEY};

use crate::cli::TailArgs;
use crate::exit::CliError;

/// How long one read waits before checking for a signal again.
const BLOCK: Duration = Duration::from_millis(500);

/// Prints messages as they arrive until --count, --timeout or a signal.
pub(crate) async fn run(args: TailArgs) -> anyhow::Result<()> {
    let topic = messaging_model::Topic::new(args.topic.as_str())?;
    let service = crate::backend::shared(&args.backend, "tail").await?;
    let backend = service.backend().clone();
    let group = format!("tail-{}", uuid::Uuid::now_v7().simple());
    backend
        .ensure_group(&topic, &group, StartFrom::Latest)
        .await?;
    // Scripts (and the tests) wait for this line before publishing.
    eprintln!("tailing {} as group {group}", args.topic);

    let printed = AtomicU64::new(0);
    let follow = follow(
        &backend,
        ConsumerId::new(topic.clone(), group.as_str(), "tail"),
        args.count,
        args.json,
        &printed,
    );
    let outcome = tokio::select! {
        outcome = with_deadline(follow, args.timeout) => match outcome {
            Some(outcome) => outcome,
            None => Err(CliError::TailTimedOut {
                waited: args.timeout.unwrap_or_default(),
                received: printed.load(Ordering::Relaxed),
                expected: args.count.unwrap_or(0),
            }
            .into()),
        },
        () = super::shutdown_signal() => Ok(()),
    };
    if let Err(error) = backend.delete_group(&topic, &group).await {
        tracing::warn!(%error, group, "could not delete the tail's consumer group");
    }
    outcome
}

/// `None` when the deadline passed first.
async fn with_deadline(
    follow: impl Future<Output = anyhow::Result<()>>,
    timeout: Option<Duration>,
) -> Option<anyhow::Result<()>> {
    match timeout {
        None => Some(follow.await),
        Some(timeout) => tokio::time::timeout(timeout, follow).await.ok(),
    }
}

/// Reads and prints until `count` messages were printed (forever without one).
async fn follow(
    backend: &Arc<dyn messaging_core::Backend>,
    consumer: ConsumerId,
    count: Option<u64>,
    json: bool,
    printed: &AtomicU64,
) -> anyhow::Result<()> {
    let mut out = std::io::stdout();
    loop {
        if count.is_some_and(|count| printed.load(Ordering::Relaxed) >= count) {
            return Ok(());
        }
        let deliveries = backend
            .read(&consumer, &ReadOptions::new_entries(64, BLOCK))
            .await?;
        for delivery in deliveries {
            let Delivery { message, receipt } = delivery;
            backend.ack(&receipt).await?;
            // A retry or a replay re-enters the stream aimed at one group: not news.
            if message.metadata.contains_key(TARGET_GROUP_KEY) {
                continue;
            }
            if count.is_some_and(|count| printed.load(Ordering::Relaxed) >= count) {
                continue;
            }
            let line = if json {
                serde_json::to_string(&message)?
            } else {
                format!(
                    "{} {} {} {}",
                    message.created_at.format("%Y-%m-%dT%H:%M:%S%.3fZ"),
                    message.topic,
                    message.id,
                    message.payload
                )
            };
            writeln!(out, "{line}")?;
            out.flush()?;
            printed.fetch_add(1, Ordering::Relaxed);
        }
    }
}
