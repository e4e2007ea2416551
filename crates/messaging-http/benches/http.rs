//! `messaging serve`'s two figures of issue 20, each beside a baseline measured
//! in the same run:
//!
//! 1. **SSE fan-out**: `BENCH_STREAMS` users (default 1,000), each with an open
//!    `GET /v1/me/events` stream; one notification recorded for every one of
//!    them in one `record_batch` (one commit); the time from the start of that
//!    write to each stream's `notification` event, p50 / p99 / max, over
//!    `BENCH_ROUNDS` rounds (default 5), and from the write's return (its
//!    commit seen by the writer; an event seen before it counts as 0) to each
//!    event. Baseline: a bare `InboxListener` (the
//!    PostgreSQL `LISTEN` the server itself follows) timed from the same
//!    instant to each of its notifications: what the database gives before the
//!    server fetches, serialises and writes anything.
//! 2. **Inbox API at 1,000,000 rows**: `BENCH_ROWS` notifications (default
//!    1,000,000) over 10,000 users; `GET /v1/me/notifications` (first page of
//!    20, then the page its cursor names) for random users, p50 / p99 over
//!    `BENCH_REQUESTS` requests (default 1,000). Baseline: the same two reads
//!    through the store directly (`list_for_user`), in the same process.
//!
//! 3. **Operator API at scale**: `BENCH_TOPICS` topics (default 1,000) and
//!    one topic holding `BENCH_DEAD_LETTERS` dead letters (default 1,000,000:
//!    1,000 real ones, dead-lettered by a handler, copied with a raw `XADD`
//!    pipeline), beside a topic of the same 1,000 real ones; what the dashboard
//!    asks, p50 / p99 over `BENCH_REQUESTS` requests each: the topic list, a
//!    topic's stats, the first page of 50 dead letters, the page after a
//!    random id, one dead letter by a random id, and a search by error text.
//!    Baselines in the same run: the same requests on the small topic (a cost
//!    flat in the number of dead letters gives a ratio near 1) and a raw
//!    `XRANGE … COUNT 51` from the same random id.
//!
//! The server runs in this process on a free loopback port over the Redis and
//! PostgreSQL of the environment, in a key prefix and schemas of its own,
//! removed at the end.

use std::sync::Arc;
use std::time::{Duration, Instant};

use messaging_core::MessagingService;
use messaging_http::{AppState, HttpConfig, InboxEvents, UserTokens};
use messaging_model::{Notification, NotificationKind};
use messaging_redis::{RedisBackend, RedisBackendConfig};
use notification_store::{InboxQuery, NotificationStore};
use notification_store_postgres::{InboxChange, PostgresStore, PostgresStoreConfig};

const USER_KEY: &str = "bench-user-key-0123456789abcdef0123456789";
const ADMIN_TOKEN: &str = "bench-admin-token-0123456789abcdef0123";

fn var(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|v| *v > 0)
        .unwrap_or(default)
}

fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(bench());
}

struct Served {
    base: String,
    store: PostgresStore,
    schema: String,
    served: tokio::task::JoinHandle<()>,
    following: tokio::task::JoinHandle<()>,
}

async fn serve(database: &str, messaging: Arc<MessagingService>, schema: &str) -> Served {
    let store = PostgresStore::connect(
        PostgresStoreConfig::new(database)
            .with_schema(schema)
            .with_max_connections(16),
    )
    .await
    .expect("PostgreSQL answers");
    store.migrate().await.expect("the store migrates");
    let events = InboxEvents::new();
    let listener = store.inbox_listener().await.expect("a listener");
    let following = tokio::spawn(events.clone().follow(listener));
    let config = HttpConfig::new(USER_KEY, ADMIN_TOKEN).expect("a config");
    let state = AppState::new(messaging, Arc::new(store.clone()), events, config).expect("a state");
    let socket = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", socket.local_addr().unwrap());
    let router = messaging_http::router(state);
    let served = tokio::spawn(async move {
        let _ = axum::serve(socket, router).await;
    });
    Served {
        base,
        store,
        schema: schema.to_owned(),
        served,
        following,
    }
}

async fn drop_schema(database: &str, schema: &str) {
    let pool = sqlx::PgPool::connect(database).await.expect("PostgreSQL");
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"
    )))
    .execute(&pool)
    .await
    .expect("drop schema");
    pool.close().await;
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * (sorted.len() as f64 - 1.0)).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

fn summary(mut ms: Vec<f64>) -> (f64, f64, f64) {
    ms.sort_by(f64::total_cmp);
    (
        percentile(&ms, 50.0),
        percentile(&ms, 99.0),
        *ms.last().unwrap_or(&f64::NAN),
    )
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

async fn bench() {
    let redis = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let database = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let id = uuid::Uuid::now_v7().simple().to_string();
    let prefix = format!("bench-http-{id}");
    let backend = RedisBackend::connect(RedisBackendConfig::new(&redis).with_key_prefix(&prefix))
        .await
        .expect("Redis answers");
    let messaging = Arc::new(MessagingService::new(Arc::new(backend)));
    let tokens = UserTokens::new(USER_KEY.as_bytes(), Duration::from_secs(30)).unwrap();
    println!("messaging-http bench, load average {}", load_average());

    let only = std::env::var("BENCH_ONLY").unwrap_or_default();
    let wants = |part: &str| only.is_empty() || only.split(',').any(|p| p.trim() == part);
    if wants("sse") {
        fan_out(
            &database,
            &messaging,
            &tokens,
            &format!("bench_http_sse_{id}"),
        )
        .await;
    }
    if wants("inbox") {
        inbox(
            &database,
            &messaging,
            &tokens,
            &format!("bench_http_inbox_{id}"),
        )
        .await;
    }
    if wants("operator") {
        operator(&redis, &prefix, &messaging, &format!("bench_http_ops_{id}")).await;
    }

    // Remove every topic the bench made (and their dead letters).
    for topic in messaging.list_topics().await.unwrap_or_default() {
        let _ = messaging.delete_topic(topic.as_str()).await;
    }
    messaging.shutdown().await;
    println!("load average at the end {}", load_average());
}

async fn fan_out(
    database: &str,
    messaging: &Arc<MessagingService>,
    tokens: &UserTokens,
    schema: &str,
) {
    let streams = var("BENCH_STREAMS", 1000);
    let rounds = var("BENCH_ROUNDS", 5);
    let served = serve(database, messaging.clone(), schema).await;
    let mut raw = served
        .store
        .inbox_listener()
        .await
        .expect("a bare listener");
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    // Each stream reports (user index, arrival) of every notification event.
    let (arrivals, mut arrived) = tokio::sync::mpsc::unbounded_channel::<(usize, Instant)>();
    let (ready_tx, mut ready) = tokio::sync::mpsc::unbounded_channel::<()>();
    let mut readers = Vec::new();
    for user in 0..streams {
        let token = tokens
            .mint(&format!("fan-{user}"), Duration::from_secs(3600))
            .unwrap();
        let response = client
            .get(format!("{}/v1/me/events", served.base))
            .bearer_auth(token)
            .send()
            .await
            .expect("a stream");
        assert_eq!(response.status(), 200);
        let arrivals = arrivals.clone();
        let ready_tx = ready_tx.clone();
        readers.push(tokio::spawn(async move {
            let mut response = response;
            let mut buffer = String::new();
            let mut first = true;
            while let Ok(Some(chunk)) = response.chunk().await {
                buffer.push_str(&String::from_utf8_lossy(&chunk));
                while let Some(end) = buffer.find("\n\n") {
                    let block: String = buffer.drain(..end + 2).collect();
                    if block.contains("event: unread") && first {
                        first = false;
                        let _ = ready_tx.send(());
                    } else if block.contains("event: notification") {
                        let _ = arrivals.send((user, Instant::now()));
                    }
                }
            }
        }));
    }
    for opened in 0..streams {
        ready.recv().await.expect("every stream opens");
        if (opened + 1) % 250 == 0 {
            eprintln!("  {} streams open", opened + 1);
        }
    }
    let mut sse_ms = Vec::new();
    let mut raw_ms = Vec::new();
    let mut writes_ms = Vec::new();
    // Arrivals, to be timed from the write's return once it is known.
    let mut sse_at = Vec::new();
    let mut raw_at = Vec::new();
    let mut sse_after_commit_ms = Vec::new();
    let mut raw_after_commit_ms = Vec::new();
    // Round 0 warms up (the pool opens its connections) and is not counted.
    for round in 0..=rounds {
        let batch: Vec<Notification> = (0..streams)
            .map(|user| {
                Notification::new(
                    format!("fan-{user}"),
                    NotificationKind::System,
                    "Hello",
                    "A new notification",
                )
            })
            .collect();
        let start = Instant::now();
        served
            .store
            .record_batch(&batch)
            .await
            .expect("the batch records");
        let committed = Instant::now();
        writes_ms.push(committed.duration_since(start).as_secs_f64() * 1e3);
        let mut raw_seen = 0;
        let mut sse_seen = 0;
        while raw_seen < streams || sse_seen < streams {
            tokio::select! {
                change = raw.recv(), if raw_seen < streams => {
                    if let Ok(InboxChange::Recorded { .. }) = change {
                        raw_seen += 1;
                        if round > 0 {
                            let at = Instant::now();
                            raw_ms.push(at.duration_since(start).as_secs_f64() * 1e3);
                            raw_at.push(at.saturating_duration_since(committed));
                        }
                    }
                }
                Some((_, at)) = arrived.recv(), if sse_seen < streams => {
                    sse_seen += 1;
                    if round > 0 {
                        sse_ms.push(at.duration_since(start).as_secs_f64() * 1e3);
                        sse_at.push(at.saturating_duration_since(committed));
                    }
                }
            }
        }
    }
    sse_after_commit_ms.extend(sse_at.iter().map(|d| d.as_secs_f64() * 1e3));
    raw_after_commit_ms.extend(raw_at.iter().map(|d| d.as_secs_f64() * 1e3));
    let (sse50, sse99, sse_max) = summary(sse_ms);
    let (csse50, csse99, csse_max) = summary(sse_after_commit_ms);
    let (craw50, craw99, craw_max) = summary(raw_after_commit_ms);
    let (raw50, raw99, raw_max) = summary(raw_ms);
    let (w50, _, _) = summary(writes_ms);
    println!(
        "SSE fan-out: {streams} streams, {rounds} rounds of one notification per stream in one commit (record_batch {w50:.1} ms p50):"
    );
    println!(
        "  record → SSE event        p50 {sse50:.1} ms  p99 {sse99:.1} ms  max {sse_max:.1} ms"
    );
    println!(
        "  record → bare LISTEN      p50 {raw50:.1} ms  p99 {raw99:.1} ms  max {raw_max:.1} ms  (baseline)"
    );
    println!(
        "  ratio SSE / bare LISTEN   p50 {:.2}  p99 {:.2}",
        sse50 / raw50,
        sse99 / raw99
    );
    println!(
        "  commit → SSE event        p50 {csse50:.1} ms  p99 {csse99:.1} ms  max {csse_max:.1} ms  (from the write's return)"
    );
    println!(
        "  commit → bare LISTEN      p50 {craw50:.1} ms  p99 {craw99:.1} ms  max {craw_max:.1} ms  (baseline)"
    );
    // The listeners hold pooled connections: gone before the pool closes.
    drop(raw);
    for reader in readers {
        reader.abort();
    }
    served.served.abort();
    served.following.abort();
    served.store.close().await;
    drop_schema(database, &served.schema).await;
}

async fn inbox(
    database: &str,
    messaging: &Arc<MessagingService>,
    tokens: &UserTokens,
    schema: &str,
) {
    let rows = var("BENCH_ROWS", 1_000_000);
    let requests = var("BENCH_REQUESTS", 1000);
    // 100 rows per user at the default size: a first page and a next one.
    let users = 10_000.min(rows / 40).max(1);
    // Fill the table before the server (and its listener) starts.
    let store = PostgresStore::connect(PostgresStoreConfig::new(database).with_schema(schema))
        .await
        .expect("PostgreSQL");
    store.migrate().await.expect("migrate");
    let fill = Instant::now();
    let chunk = 10_000;
    let mut written = 0;
    while written < rows {
        let batch: Vec<Notification> = (written..(written + chunk).min(rows))
            .map(|i| {
                Notification::new(
                    format!("inbox-{}", i % users),
                    NotificationKind::System,
                    format!("Notification {i}"),
                    "Your wallet was recharged with 20.00 EUR.",
                )
            })
            .collect();
        store.record_batch(&batch).await.expect("fill");
        written += batch.len();
    }
    let fill_s = fill.elapsed().as_secs_f64();
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "ANALYZE \"{schema}\".notifications"
    )))
    .execute(&sqlx::PgPool::connect(database).await.unwrap())
    .await
    .unwrap();
    store.close().await;
    let served = serve(database, messaging.clone(), schema).await;
    let client = reqwest::Client::new();
    let mut http_ms = Vec::new();
    let mut store_ms = Vec::new();
    let mut rng = fastrand::Rng::with_seed(20261204);
    for _ in 0..requests {
        let user = format!("inbox-{}", rng.usize(..users));
        let token = tokens.mint(&user, Duration::from_secs(3600)).unwrap();
        // Through the API: the first page, then the next one by its cursor.
        let start = Instant::now();
        let first: serde_json::Value = client
            .get(format!("{}/v1/me/notifications?limit=20", served.base))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        http_ms.push(start.elapsed().as_secs_f64() * 1e3);
        let cursor = first["next_cursor"]
            .as_str()
            .expect("a second page")
            .to_owned();
        let start = Instant::now();
        let second = client
            .get(format!(
                "{}/v1/me/notifications?limit=20&cursor={cursor}",
                served.base
            ))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(second.status(), 200);
        let _ = second.bytes().await.unwrap();
        http_ms.push(start.elapsed().as_secs_f64() * 1e3);
        // The same two reads on the store.
        let start = Instant::now();
        let page = served
            .store
            .list_for_user(&user, &InboxQuery::default().with_limit(20))
            .await
            .unwrap();
        store_ms.push(start.elapsed().as_secs_f64() * 1e3);
        let next = page.next_cursor.expect("a second page");
        let start = Instant::now();
        served
            .store
            .list_for_user(
                &user,
                &InboxQuery::default().with_limit(20).with_cursor(next),
            )
            .await
            .unwrap();
        store_ms.push(start.elapsed().as_secs_f64() * 1e3);
    }
    let (h50, h99, hmax) = summary(http_ms);
    let (s50, s99, smax) = summary(store_ms);
    println!(
        "inbox API at {rows} rows ({users} users, filled in {fill_s:.1} s), {requests} × (first page + next page) of 20:"
    );
    println!("  GET /v1/me/notifications  p50 {h50:.2} ms  p99 {h99:.2} ms  max {hmax:.2} ms");
    println!(
        "  store list_for_user       p50 {s50:.2} ms  p99 {s99:.2} ms  max {smax:.2} ms  (baseline)"
    );
    println!(
        "  ratio API / store         p50 {:.2}  p99 {:.2}",
        h50 / s50,
        h99 / s99
    );
    served.served.abort();
    served.following.abort();
    served.store.close().await;
    drop_schema(database, &served.schema).await;
}

/// p50 / p99 / max of `requests` GETs of the paths `path` gives, in ms.
async fn timed_gets(
    client: &reqwest::Client,
    base: &str,
    requests: usize,
    mut path: impl FnMut(usize) -> String,
) -> (f64, f64, f64) {
    let mut ms = Vec::with_capacity(requests);
    for i in 0..requests {
        let url = format!("{base}{}", path(i));
        let start = Instant::now();
        let response = client
            .get(&url)
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .unwrap();
        let status = response.status();
        let _ = response.bytes().await.unwrap();
        ms.push(start.elapsed().as_secs_f64() * 1e3);
        assert!(status.is_success(), "{url}: {status}");
    }
    summary(ms)
}

/// Dead-letters `count` messages of `topic` for real (a handler that refuses
/// them for good) and waits until they are.
async fn real_dead_letters(messaging: &MessagingService, topic: &str, count: usize) {
    use messaging_core::{HandlerError, SubscribeOptions};
    use messaging_model::Message;
    messaging.create_topic(topic).await.expect("a topic");
    messaging
        .subscribe_with(topic, SubscribeOptions::new("ops"), |_: Message| async {
            Err::<(), _>(HandlerError::permanent(
                "SMTP 550 5.1.1 mailbox unavailable",
            ))
        })
        .await
        .expect("a subscription");
    let payloads: Vec<serde_json::Value> = (0..count)
        .map(|i| serde_json::json!({"to": format!("user-{i}@example.com"), "template": "welcome"}))
        .collect();
    for chunk in payloads.chunks(500) {
        messaging
            .publish_batch(topic, chunk.to_vec())
            .await
            .expect("published");
    }
    while messaging.stats(topic).await.expect("stats").dead_lettered < count as u64 {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    messaging.unsubscribe(topic).await.expect("unsubscribed");
}

async fn operator(redis_url: &str, prefix: &str, messaging: &Arc<MessagingService>, schema: &str) {
    let topics = var("BENCH_TOPICS", 1000);
    let dead = var("BENCH_DEAD_LETTERS", 1_000_000);
    let requests = var("BENCH_REQUESTS", 1000).min(500);
    let fill = Instant::now();
    for i in 0..topics {
        messaging
            .create_topic(&format!("ops-{i:04}"))
            .await
            .expect("a topic");
    }
    let real = 1000.min(dead);
    real_dead_letters(messaging, "ops-dlq-big", real).await;
    real_dead_letters(messaging, "ops-dlq-small", real).await;
    // Copy the big topic's real dead letters until it holds `dead`, one in
    // 100,000 with another error (what the search looks for).
    let client = redis::Client::open(redis_url).expect("a Redis URL");
    let mut raw = client
        .get_multiplexed_async_connection()
        .await
        .expect("Redis answers");
    let key = format!("{{{prefix}:ops-dlq-big}}:dlq");
    let entries: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
        .arg(&key)
        .arg("-")
        .arg("+")
        .query_async(&mut raw)
        .await
        .expect("the real dead letters");
    let mut ids: Vec<String> = entries.ids.iter().map(|entry| entry.id.clone()).collect();
    let mut written = entries.ids.len();
    while written < dead {
        let mut pipe = redis::pipe();
        let mut n = 0;
        for entry in entries.ids.iter().take(dead - written) {
            let mut cmd = redis::cmd("XADD");
            cmd.arg(&key).arg("*");
            let rare = (written + n).is_multiple_of(100_000);
            for (field, value) in &entry.map {
                let value: Vec<u8> = redis::from_redis_value(value.clone()).expect("bytes");
                if rare && field == "e" {
                    cmd.arg(field).arg("permanent failure: rare quota exceeded");
                } else {
                    cmd.arg(field).arg(value);
                }
            }
            pipe.add_command(cmd);
            n += 1;
        }
        let added: Vec<String> = pipe.query_async(&mut raw).await.expect("copied");
        ids.extend(added.into_iter().step_by(97));
        written += n;
    }
    let small_ids: Vec<String> = messaging
        .dead_letters("ops-dlq-small", real)
        .await
        .expect("the small topic's dead letters")
        .into_iter()
        .map(|d| d.id)
        .collect();
    let big_len = messaging
        .stats("ops-dlq-big")
        .await
        .expect("stats")
        .dead_lettered;
    let fill_s = fill.elapsed().as_secs_f64();
    println!(
        "operator API: {topics} topics, a topic of {big_len} dead letters beside one of {real} (made in {fill_s:.1} s), {requests} requests each:"
    );

    // The server needs a store for its inbox routes; it is not read here.
    let served = serve(
        &std::env::var("DATABASE_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into()),
        messaging.clone(),
        schema,
    )
    .await;
    let http = reqwest::Client::new();
    let base = served.base.clone();
    let mut rng = fastrand::Rng::with_seed(20261205);
    let line = |what: &str, (p50, p99, max): (f64, f64, f64)| {
        println!("  {what:<44} p50 {p50:>6.2} ms  p99 {p99:>6.2} ms  max {max:>6.2} ms");
    };
    line(
        "GET /v1/admin/topics",
        timed_gets(&http, &base, requests, |_| "/v1/admin/topics".into()).await,
    );
    let stats = timed_gets(&http, &base, requests, |i| {
        format!("/v1/admin/topics/ops-{:04}/stats", i % topics)
    })
    .await;
    line("GET …/{topic}/stats (each topic in turn)", stats);
    let compare = |what: &str, big: (f64, f64, f64), small: (f64, f64, f64)| {
        line(&format!("{what}, {big_len}"), big);
        line(&format!("{what}, {real}"), small);
        println!(
            "  {:<44} p50 {:.2}  p99 {:.2}",
            "  ratio big / small",
            big.0 / small.0,
            big.1 / small.1
        );
    };
    let first =
        |topic: &'static str| move |_| format!("/v1/admin/topics/{topic}/dead-letters?limit=50");
    compare(
        "first page of 50",
        timed_gets(&http, &base, requests, first("ops-dlq-big")).await,
        timed_gets(&http, &base, requests, first("ops-dlq-small")).await,
    );
    let picks: Vec<String> = (0..requests)
        .map(|_| ids[rng.usize(..ids.len())].clone())
        .collect();
    let small_picks: Vec<String> = (0..requests)
        .map(|_| small_ids[rng.usize(..small_ids.len())].clone())
        .collect();
    let big_after = timed_gets(&http, &base, requests, |i| {
        format!(
            "/v1/admin/topics/ops-dlq-big/dead-letters?limit=50&after={}",
            picks[i]
        )
    })
    .await;
    let small_after = timed_gets(&http, &base, requests, |i| {
        format!(
            "/v1/admin/topics/ops-dlq-small/dead-letters?limit=50&after={}",
            small_picks[i]
        )
    })
    .await;
    compare("page of 50 after a random id", big_after, small_after);
    let big_one = timed_gets(&http, &base, requests, |i| {
        format!("/v1/admin/topics/ops-dlq-big/dead-letters/{}", picks[i])
    })
    .await;
    let small_one = timed_gets(&http, &base, requests, |i| {
        format!(
            "/v1/admin/topics/ops-dlq-small/dead-letters/{}",
            small_picks[i]
        )
    })
    .await;
    compare("one dead letter by id", big_one, small_one);
    let search = |topic: &'static str| {
        move |_| format!("/v1/admin/topics/{topic}/dead-letters?limit=50&error=quota")
    };
    compare(
        "search by error (reads ≤ 10,000)",
        timed_gets(&http, &base, requests.min(100), search("ops-dlq-big")).await,
        timed_gets(&http, &base, requests.min(100), search("ops-dlq-small")).await,
    );
    // Baseline: the page after a random id straight from Redis.
    let mut raw_ms = Vec::new();
    for pick in &picks {
        let start = Instant::now();
        let _: redis::Value = redis::cmd("XRANGE")
            .arg(&key)
            .arg(format!("({pick}"))
            .arg("+")
            .arg("COUNT")
            .arg(51)
            .query_async(&mut raw)
            .await
            .expect("a raw page");
        raw_ms.push(start.elapsed().as_secs_f64() * 1e3);
    }
    let raw_page = summary(raw_ms);
    line(&format!("raw XRANGE (after COUNT 51), {big_len}"), raw_page);
    println!(
        "  {:<44} p50 {:.2}  p99 {:.2}",
        "  ratio API page / raw XRANGE",
        big_after.0 / raw_page.0,
        big_after.1 / raw_page.1
    );
    served.served.abort();
    served.following.abort();
    served.store.close().await;
    drop_schema(
        &std::env::var("DATABASE_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into()),
        &served.schema,
    )
    .await;
}
