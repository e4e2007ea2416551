//! The writes of a send (record, begin_attempt, record_attempt) from concurrent
//! senders: group commit (the default) against one commit per write, in the same
//! run, against the same server.
//!
//! Run: `DATABASE_URL=postgres://postgres@127.0.0.1:5432/test cargo bench -p
//! notification-store-postgres --bench group_commit` (`BENCH_SENDS`, default
//! 4,000 per round; `BENCH_SENDERS`, default 32; `BENCH_WRITERS`, the group
//! commit's writers, default that of `GroupCommitConfig`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use messaging_model::{AttemptOutcome, DeliveryAttempt, Notification, NotificationKind};
use notification_store::NotificationStore;
use notification_store_postgres::{GroupCommitConfig, PostgresStore, PostgresStoreConfig};
use sqlx::{AssertSqlSafe, Connection, PgConnection};

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(run());
}

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

async fn run() {
    let url = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let sends = env("BENCH_SENDS", 4_000);
    let senders = env("BENCH_SENDERS", 32);
    let schema = format!("bench_gc_{}", uuid::Uuid::now_v7().simple());
    let config = PostgresStoreConfig::new(&url)
        .with_schema(&schema)
        .with_max_connections(10);
    let writers = env("BENCH_WRITERS", GroupCommitConfig::default().writers);
    let grouped = PostgresStore::connect(
        config
            .clone()
            .with_group_commit(GroupCommitConfig::default().with_writers(writers)),
    )
    .await
    .expect("connect");
    grouped.migrate().await.expect("migrate");
    let single = PostgresStore::connect(config.with_group_commit(None))
        .await
        .expect("connect");
    println!(
        "group commit bench: {sends} sends per round, {senders} senders, {writers} writers, load average {}",
        load_average()
    );

    let mut grouped_rates = Vec::new();
    let mut single_rates = Vec::new();
    for round in 0..3 {
        // Taking turns, so a burst of load on the machine hits both alike.
        grouped_rates.push(round_rate(&grouped, sends, senders, &format!("g{round}")).await);
        single_rates.push(round_rate(&single, sends, senders, &format!("s{round}")).await);
    }
    let median = |rates: &mut Vec<f64>| {
        rates.sort_by(f64::total_cmp);
        rates[rates.len() / 2]
    };
    let (g, s) = (median(&mut grouped_rates), median(&mut single_rates));
    let stats = grouped.group_commit_stats().unwrap_or_default();
    println!(
        "send writes (record + begin_attempt + record_attempt), {senders} concurrent senders: \
         group commit {g:.0} sends/s | one commit per write {s:.0} sends/s | ratio {:.2}x | \
         mean batch {:.1} writes",
        g / s,
        stats.writes as f64 / stats.batches.max(1) as f64
    );
    println!("load average after: {}", load_average());

    grouped.close().await;
    single.close().await;
    let mut admin = PgConnection::connect(&url).await.expect("connect");
    sqlx::raw_sql(AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
        .execute(&mut admin)
        .await
        .expect("drop the bench schema");
}

/// Sends per second of one round: `senders` tasks share `sends` send flows.
async fn round_rate(store: &PostgresStore, sends: usize, senders: usize, tag: &str) -> f64 {
    let store = Arc::new(store.clone());
    let started = Instant::now();
    let tasks: Vec<_> = (0..senders)
        .map(|sender| {
            let store = store.clone();
            let tag = tag.to_owned();
            tokio::spawn(async move {
                for i in (sender..sends).step_by(senders) {
                    let n = Notification::new(
                        format!("{tag}-user-{}", i % 500),
                        NotificationKind::Email,
                        "Welcome",
                        "Hello",
                    )
                    .with_idempotency_key(format!("{tag}:{i}"));
                    store.record(&n).await.expect("record");
                    let sending = store
                        .begin_attempt(n.id, 0, chrono::Utc::now())
                        .await
                        .expect("begin");
                    let attempt = DeliveryAttempt::new(&sending, 1, "smtp", AttemptOutcome::Sent)
                        .with_duration(Duration::from_millis(1));
                    store.record_attempt(&attempt).await.expect("sent");
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("sender");
    }
    sends as f64 / started.elapsed().as_secs_f64()
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|text| {
            text.split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_else(|_| "unknown".into())
}
