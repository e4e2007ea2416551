//! How long a notification takes from its `record` (committed) to a user's
//! open event stream (`GET /v1/me/events`), against the baseline of the same
//! run: a bare `LISTEN` connection hearing the trigger's `NOTIFY` (what any
//! push over PostgreSQL costs at least). Issue 20 asks for the event within
//! 100 ms.
//!
//! Run: `DATABASE_URL=postgres://postgres@127.0.0.1:5432/test cargo bench -p
//! messaging-http --bench sse` (`BENCH_ROUNDS`, default 200 per side).

use std::sync::Arc;
use std::time::{Duration, Instant};

use messaging_core::MessagingService;
use messaging_http::{AppState, HttpConfig, InboxEvents, UserTokens};
use messaging_model::{Notification, NotificationKind};
use notification_store::NotificationStore;
use notification_store_postgres::{PostgresStore, PostgresStoreConfig};

const USER_KEY: &str = "bench-user-key-0123456789abcdef0123456789";

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(run());
}

async fn run() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let url = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let rounds: usize = std::env::var("BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let schema = format!("bench_sse_{}", uuid::Uuid::now_v7().simple());
    let store = PostgresStore::connect(
        PostgresStoreConfig::new(&url)
            .with_schema(&schema)
            .with_max_connections(4),
    )
    .await
    .expect("connect");
    store.migrate().await.expect("migrate");
    println!(
        "sse bench: {rounds} notifications per side, one at a time, load average {}",
        load_average()
    );

    // Baseline: a bare listener on the trigger's channel.
    let mut bare = store.inbox_listener().await.expect("listen");
    let mut baseline = Vec::with_capacity(rounds);
    for i in 0..rounds {
        let n = Notification::new("bench-bare", NotificationKind::System, "t", format!("{i}"));
        store.record(&n).await.expect("record");
        let recorded = Instant::now();
        loop {
            match bare.recv().await.expect("recv") {
                notification_store_postgres::InboxChange::Recorded { id, .. } if id == n.id => {
                    break;
                }
                _ => {}
            }
        }
        baseline.push(recorded.elapsed());
    }
    drop(bare);

    // Measured: the server, and a client on its event stream.
    let events = InboxEvents::new();
    let following = tokio::spawn(
        events
            .clone()
            .follow(store.inbox_listener().await.expect("listen")),
    );
    let state = AppState::new(
        Arc::new(MessagingService::in_memory()),
        Arc::new(store.clone()),
        events,
        HttpConfig::new(USER_KEY, "bench-admin-token-0123456789abcdef0123").expect("config"),
    )
    .expect("state");
    let socket = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = socket.local_addr().expect("addr");
    let served = tokio::spawn(async move {
        let _ = axum::serve(socket, messaging_http::router(state)).await;
    });
    let token = UserTokens::new(USER_KEY.as_bytes(), Duration::ZERO)
        .expect("key")
        .mint("bench-user", Duration::from_secs(3600))
        .expect("token");
    let mut response = reqwest::Client::new()
        .get(format!("http://{addr}/v1/me/events"))
        .bearer_auth(token)
        .send()
        .await
        .expect("stream");
    let mut buffer = String::new();
    wait_for(&mut response, &mut buffer, "event: unread").await;
    let mut measured = Vec::with_capacity(rounds);
    for i in 0..rounds {
        let n = Notification::new("bench-user", NotificationKind::System, "t", format!("{i}"));
        store.record(&n).await.expect("record");
        let recorded = Instant::now();
        wait_for(&mut response, &mut buffer, &format!("id: {}", n.id)).await;
        measured.push(recorded.elapsed());
    }

    let (b50, b99) = percentiles(&mut baseline);
    let (m50, m99) = percentiles(&mut measured);
    println!(
        "record -> event: SSE p50 {:.2} ms p99 {:.2} ms | bare LISTEN p50 {:.2} ms p99 {:.2} ms | p99 ratio {:.2}x | target p99 <= 100 ms: {}",
        ms(m50),
        ms(m99),
        ms(b50),
        ms(b99),
        m99.as_secs_f64() / b99.as_secs_f64().max(1e-9),
        if m99 <= Duration::from_millis(100) {
            "met"
        } else {
            "missed"
        }
    );
    println!("load average after: {}", load_average());

    served.abort();
    following.abort();
    drop(response);
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
        .execute(store.pool())
        .await
        .expect("drop the bench schema");
    store.close().await;
}

/// Reads the stream until `needle` has arrived, consuming up to its block's end.
async fn wait_for(response: &mut reqwest::Response, buffer: &mut String, needle: &str) {
    loop {
        if let Some(at) = buffer.find(needle) {
            let end = buffer[at..].find("\n\n").map(|e| at + e + 2);
            if let Some(end) = end {
                buffer.drain(..end);
                return;
            }
        }
        let chunk = tokio::time::timeout(Duration::from_secs(30), response.chunk())
            .await
            .expect("an event within 30 s")
            .expect("the stream reads")
            .expect("the stream stays open");
        buffer.push_str(&String::from_utf8_lossy(&chunk));
    }
}

fn percentiles(samples: &mut [Duration]) -> (Duration, Duration) {
    samples.sort();
    let at = |q: f64| samples[((samples.len() as f64 - 1.0) * q).round() as usize];
    (at(0.5), at(0.99))
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
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
