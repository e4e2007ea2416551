//! The inbox over HTTP against the store it reads, in the same run: a page of
//! 20 (`GET /v1/me/notifications`) and the unread count (`GET
//! /v1/me/unread-count`) by concurrent clients, against the same calls made on
//! the `PostgresStore` directly (what the API adds: HTTP, the token check, JSON).
//!
//! Run: `DATABASE_URL=postgres://postgres@127.0.0.1:5432/test cargo bench -p
//! messaging-http --bench inbox` (`BENCH_REQUESTS`, default 2,000 per side and
//! call; `BENCH_CLIENTS`, default 8).

use std::sync::Arc;
use std::time::{Duration, Instant};

use messaging_core::MessagingService;
use messaging_http::{AppState, HttpConfig, InboxEvents, UserTokens};
use messaging_model::{Notification, NotificationKind};
use notification_store::{InboxQuery, NotificationStore};
use notification_store_postgres::{PostgresStore, PostgresStoreConfig};

const USER_KEY: &str = "bench-user-key-0123456789abcdef0123456789";
const USERS: usize = 50;

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
    let _ = rustls::crypto::ring::default_provider().install_default();
    let url = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let requests = env("BENCH_REQUESTS", 2_000);
    let clients = env("BENCH_CLIENTS", 8);
    let schema = format!("bench_inbox_{}", uuid::Uuid::now_v7().simple());
    let store = PostgresStore::connect(
        PostgresStoreConfig::new(&url)
            .with_schema(&schema)
            .with_max_connections(10),
    )
    .await
    .expect("connect");
    store.migrate().await.expect("migrate");
    // 50 users with 200 notifications each, a third of them read.
    for user in 0..USERS {
        let batch: Vec<Notification> = (0..200)
            .map(|i| {
                let mut n = Notification::new(
                    format!("user-{user}"),
                    NotificationKind::System,
                    "Hi",
                    format!("{i}"),
                );
                n.is_read = i % 3 == 0;
                n
            })
            .collect();
        store.record_batch(&batch).await.expect("record");
    }
    println!(
        "inbox bench: {requests} requests per side and call, {clients} clients, {USERS} users x 200 notifications, load average {}",
        load_average()
    );

    let state = AppState::new(
        Arc::new(MessagingService::in_memory()),
        Arc::new(store.clone()),
        InboxEvents::new(),
        HttpConfig::new(USER_KEY, "bench-admin-token-0123456789abcdef0123").expect("config"),
    )
    .expect("state");
    let socket = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", socket.local_addr().expect("addr"));
    let served = tokio::spawn(async move {
        let _ = axum::serve(socket, messaging_http::router(state)).await;
    });
    let tokens = UserTokens::new(USER_KEY.as_bytes(), Duration::ZERO).expect("key");
    let tokens: Arc<Vec<String>> = Arc::new(
        (0..USERS)
            .map(|u| {
                tokens
                    .mint(&format!("user-{u}"), Duration::from_secs(3600))
                    .expect("token")
            })
            .collect(),
    );
    let http = reqwest::Client::new();

    for (call, path) in [
        ("page of 20", "/v1/me/notifications?limit=20"),
        ("unread count", "/v1/me/unread-count"),
    ] {
        let mut over_http = Vec::new();
        let mut direct = Vec::new();
        for _ in 0..3 {
            // Taking turns, so a burst of load on the machine hits both alike.
            over_http.push(
                rate(requests, clients, {
                    let (http, tokens, url) =
                        (http.clone(), tokens.clone(), format!("{base}{path}"));
                    move |i| {
                        let request = http.get(&url).bearer_auth(&tokens[i % USERS]);
                        async move {
                            let response = request.send().await.expect("request");
                            assert!(response.status().is_success());
                            response.bytes().await.expect("body");
                        }
                    }
                })
                .await,
            );
            direct.push(
                rate(requests, clients, {
                    let store = store.clone();
                    let page = call == "page of 20";
                    move |i| {
                        let store = store.clone();
                        async move {
                            let user = format!("user-{}", i % USERS);
                            if page {
                                store
                                    .list_for_user(&user, &InboxQuery::default().with_limit(20))
                                    .await
                                    .expect("page");
                            } else {
                                store.unread_count(&user).await.expect("count");
                            }
                        }
                    }
                })
                .await,
            );
        }
        let (h, d) = (median(&mut over_http), median(&mut direct));
        println!(
            "{call}: HTTP {h:.0} req/s | store directly {d:.0} calls/s | ratio {:.2}",
            h / d
        );
    }
    println!("load average after: {}", load_average());

    served.abort();
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
        .execute(store.pool())
        .await
        .expect("drop the bench schema");
    store.close().await;
}

/// Calls per second: `clients` tasks share `requests` calls of `call(i)`.
async fn rate<F, Fut>(requests: usize, clients: usize, call: F) -> f64
where
    F: Fn(usize) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    let started = Instant::now();
    let tasks: Vec<_> = (0..clients)
        .map(|client| {
            let call = call.clone();
            tokio::spawn(async move {
                for i in (client..requests).step_by(clients) {
                    call(i).await;
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("client");
    }
    requests as f64 / started.elapsed().as_secs_f64()
}

fn median(rates: &mut [f64]) -> f64 {
    rates.sort_by(f64::total_cmp);
    rates[rates.len() / 2]
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
