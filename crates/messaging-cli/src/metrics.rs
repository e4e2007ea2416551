//! The Prometheus endpoint of the worker and the per-topic gauges.
//!
//! The runtime in `messaging-core` emits its counters and histograms through the
//! `metrics` facade; this module installs the recorder that serves them (and the
//! gauges below) on `GET /metrics`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use messaging_core::{MessagingService, TopicStats};
use metrics_exporter_prometheus::PrometheusBuilder;
use tokio::sync::watch;

use crate::exit::CliError;

/// Messages retained in a topic's stream.
pub(crate) const TOPIC_LENGTH: &str = "messaging_topic_length";
/// Messages waiting for their delivery time.
pub(crate) const TOPIC_SCHEDULED: &str = "messaging_topic_scheduled";
/// Messages in a topic's dead-letter queue.
pub(crate) const TOPIC_DEAD_LETTERED: &str = "messaging_topic_dead_lettered";
/// Deliveries of a group not yet settled.
pub(crate) const GROUP_PENDING: &str = "messaging_group_pending";
/// Messages not yet delivered to a group.
pub(crate) const GROUP_LAG: &str = "messaging_group_lag";
/// Failed polls of the backend's figures.
pub(crate) const STATS_ERRORS: &str = "messaging_stats_errors_total";

/// Serves `/metrics` on `addr` (and on every other path) until the process exits.
pub(crate) fn install_exporter(addr: SocketAddr) -> Result<(), CliError> {
    PrometheusBuilder::new()
        .with_http_listener(addr)
        .install()
        .map_err(|error| CliError::InvalidSetting {
            name: "--metrics-addr".into(),
            reason: format!("cannot serve metrics on {addr}: {error}"),
        })?;
    describe();
    Ok(())
}

fn describe() {
    metrics::describe_gauge!(TOPIC_LENGTH, "Messages retained in the topic's stream.");
    metrics::describe_gauge!(
        TOPIC_SCHEDULED,
        "Messages waiting for their delivery time (delayed or backing off)."
    );
    metrics::describe_gauge!(
        TOPIC_DEAD_LETTERED,
        "Messages in the topic's dead-letter queue."
    );
    metrics::describe_gauge!(
        GROUP_PENDING,
        "Deliveries to the consumer group not yet acknowledged."
    );
    metrics::describe_gauge!(
        GROUP_LAG,
        "Messages of the topic not yet delivered to the consumer group."
    );
    metrics::describe_counter!(STATS_ERRORS, "Failed polls of the backend's topic figures.");
}

/// Sets the gauges of one topic.
pub(crate) fn record(stats: &TopicStats) {
    let topic = stats.topic.clone();
    metrics::gauge!(TOPIC_LENGTH, "topic" => topic.clone()).set(stats.length as f64);
    metrics::gauge!(TOPIC_SCHEDULED, "topic" => topic.clone()).set(stats.scheduled as f64);
    metrics::gauge!(TOPIC_DEAD_LETTERED, "topic" => topic.clone()).set(stats.dead_lettered as f64);
    for group in &stats.groups {
        let labels = [("topic", topic.clone()), ("group", group.name.clone())];
        metrics::gauge!(GROUP_PENDING, &labels).set(group.pending as f64);
        metrics::gauge!(GROUP_LAG, &labels).set(group.lag as f64);
    }
}

/// Refreshes the gauges of every topic each `interval` until `stop` turns true.
pub(crate) async fn poll_topic_gauges(
    service: Arc<MessagingService>,
    interval: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = stop.wait_for(|stopped| *stopped) => return,
        }
        if let Err(error) = poll_once(&service).await {
            metrics::counter!(STATS_ERRORS).increment(1);
            tracing::warn!(%error, "could not read the topic figures");
        }
    }
}

async fn poll_once(service: &MessagingService) -> Result<(), messaging_core::MessagingError> {
    for topic in service.list_topics().await? {
        record(&service.stats(&topic).await?);
    }
    Ok(())
}
