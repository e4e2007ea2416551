//! The worker's end-to-end rate against an independent SMTP server:
//! `user.registered` events per second from publish to a `sent` notification
//! recorded in PostgreSQL, each one an email accepted by Postfix's `smtp-sink`
//! on loopback; the worker's peak memory (VmHWM); two worker processes.
//!
//! Baselines, measured in the same run:
//! * **bare lettre**: the same emails (the ones the pipeline renders, captured
//!   from the no-op run below) sent to the same smtp-sink by lettre's
//!   `AsyncSmtpConnection` over `TCP_NODELAY` streams, as many connections as
//!   the worker's concurrency. The target: the worker ≥ 0.7 of it.
//! * **store writes**: the pipeline (Redis, the default listeners) in this
//!   process with a no-op email channel, on the PostgreSQL store and on the
//!   in-memory store. The target: PostgreSQL ≥ 0.7 of in-memory.
//!
//! Needs Redis and PostgreSQL (`REDIS_URL`, `DATABASE_URL`; local defaults) and
//! `/usr/sbin/smtp-sink` (Debian's `postfix` package).
//! Run: `cargo bench -p messaging-cli --bench worker` (or `make bench`).
//! `BENCH_EVENTS` sets the number of events (default 2000), `BENCH_CONCURRENCY`
//! the handlers at once (default 32).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use lettre::Message;
use lettre::message::{Mailbox, MultiPart, SinglePart, header::ContentType};
use lettre::transport::smtp::client::AsyncSmtpConnection;
use lettre::transport::smtp::extension::ClientId;
use messaging_core::{MessagingService, SubscribeOptions};
use messaging_model::{DeliveryAttempt, MessageTemplate, Notification, NotificationStatus};
use messaging_redis::{RedisBackend, RedisBackendConfig};
use notification::NotificationService;
use notification::channel::{EmailMessage, RecordingChannel};
use notification::events::EventRules;
use notification::store::{
    InMemoryNotificationStore, InMemoryTemplateStore, InboxPage, InboxQuery, NotificationStore,
    StatusUpdate, StoreError, TemplateStore,
};
use notification_store_postgres::{GroupCommitConfig, PostgresStore, PostgresStoreConfig};
use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::process::{Child, Command};
use uuid::Uuid;

const DEADLINE: Duration = Duration::from_secs(120);
const CHUNK: usize = 200;
const SMTP_SINK: &str = "/usr/sbin/smtp-sink";
const FROM: &str = "bench@messaging.invalid";

/// Handlers at once (the worker's `concurrency`, the pipeline's, and the
/// baseline's connections): `BENCH_CONCURRENCY`, default 32.
fn concurrency() -> usize {
    static CONCURRENCY: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *CONCURRENCY.get_or_init(|| {
        std::env::var("BENCH_CONCURRENCY")
            .ok()
            .and_then(|n| n.parse().ok())
            .filter(|n| *n > 0)
            .unwrap_or(32)
    })
}

/// Group commit as the store's default, or as `BENCH_WRITERS` and
/// `BENCH_MAX_BATCH` set it (to explore).
fn group_commit() -> GroupCommitConfig {
    let var = |name: &str| {
        std::env::var(name)
            .ok()
            .and_then(|n| n.parse::<usize>().ok())
    };
    let mut config = GroupCommitConfig::default();
    if let Some(writers) = var("BENCH_WRITERS") {
        config = config.with_writers(writers);
    }
    if let Some(max_batch) = var("BENCH_MAX_BATCH") {
        config = config.with_max_batch(max_batch);
    }
    config
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(bench());
}

struct Setup {
    redis: String,
    database: String,
    prefix: String,
    schema: String,
    pool: sqlx::PgPool,
    events: usize,
}

async fn bench() {
    let events: usize = std::env::var("BENCH_EVENTS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(2000);
    let redis = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let database = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let id = uuid::Uuid::now_v7().simple().to_string();
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(2)
        .connect(&database)
        .await
        .unwrap_or_else(|error| {
            panic!(
                "cannot reach PostgreSQL at {database} ({error}): start one and set DATABASE_URL"
            )
        });
    let setup = Setup {
        redis,
        database,
        prefix: format!("bench-worker-{id}"),
        schema: format!("bench_worker_{id}"),
        pool,
        events,
    };

    // Store writes: the pipeline with a no-op channel, in-memory then PostgreSQL.
    // (The in-memory run takes five times the events, for a stable figure.)
    let (_, memory, memory_stats) = noop_pipeline(&setup, "mem", false, events * 5).await;
    let memory_rate = (events * 5) as f64 / memory.as_secs_f64();
    let (emails, postgres, stats) = noop_pipeline(&setup, "pg", true, events).await;
    assert_eq!(emails.len(), events, "one no-op email per event");
    if std::env::var_os("BENCH_STORE_ONLY").is_some() {
        println!(
            "store writes only (concurrency {}, {:?}): PostgreSQL {:.0} events/s, in-memory {memory_rate:.0} events/s, ratio {:.2}",
            concurrency(),
            group_commit(),
            events as f64 / postgres.as_secs_f64(),
            events as f64 / postgres.as_secs_f64() / memory_rate
        );
        print!("{stats}");
        return;
    }

    // Bare lettre, the same emails (five rounds, for a stable figure) to the
    // same kind of server; once before the workers and once after.
    let baseline_first = lettre_baseline(&emails, 5).await;

    // One worker process.
    let sink = PostfixSink::start().await;
    let config_file = worker_config(&setup, "one", sink.port);
    let one = Namespace::new(&setup, "one");
    let mut worker = spawn_worker(&setup, &one, &config_file).await;
    let pid = worker.id().expect("the worker runs");
    let single = one.deliver(&setup).await;
    let peak_kib = peak_memory_kib(pid);
    sink.wait_for_messages(events).await;
    stop(&mut worker).await;
    one.remove(&setup).await;

    // Two worker processes, one consumer group.
    let sink_two = PostfixSink::start().await;
    let config_two = worker_config(&setup, "two", sink_two.port);
    let two = Namespace::new(&setup, "two");
    let mut first = spawn_worker(&setup, &two, &config_two).await;
    let mut second = spawn_worker(&setup, &two, &config_two).await;
    let double = two.deliver(&setup).await;
    sink_two.wait_for_messages(events).await;
    stop(&mut first).await;
    stop(&mut second).await;
    two.remove(&setup).await;
    let _ = std::fs::remove_file(&config_file);
    let _ = std::fs::remove_file(&config_two);

    let baseline_second = lettre_baseline(&emails, 5).await;
    let baseline = baseline_first.max(baseline_second);

    let rate = |elapsed: Duration| events as f64 / elapsed.as_secs_f64();
    let line = |what: &str, elapsed: Duration| {
        println!(
            "  {what:<60} {:>8.0} events/s ({:.2} s)",
            rate(elapsed),
            elapsed.as_secs_f64()
        );
    };
    println!(
        "worker end-to-end ({events} user.registered events, Postfix smtp-sink, PostgreSQL store, concurrency {}):",
        concurrency()
    );
    line(
        "1 worker: publish → email accepted → `sent` in PostgreSQL",
        single,
    );
    println!(
        "  {:<60} {baseline:>8.0} emails/s (first {baseline_first:.0}, second {baseline_second:.0})",
        "baseline: bare lettre, TCP_NODELAY, same emails, better of 2"
    );
    println!(
        "  ratio worker / bare lettre:                 {:.2}  (target ≥ 0.70)",
        rate(single) / baseline
    );
    println!(
        "  ratio worker / the same pipeline in-process, no-op channel:   {:.2}  (what SMTP and the process add)",
        rate(single) / rate(postgres)
    );
    line("2 workers, one consumer group", double);
    println!(
        "  ratio 2 workers / 1 worker:                 {:.2}",
        rate(double) / rate(single)
    );
    println!("store writes (in this process, no-op email channel):");
    line("pipeline on the PostgreSQL store", postgres);
    println!(
        "  {:<60} {memory_rate:>8.0} events/s ({:.2} s for {} events)",
        "pipeline on the in-memory store",
        memory.as_secs_f64(),
        events * 5
    );
    println!(
        "  ratio PostgreSQL / in-memory:               {:.2}  (target ≥ 0.70)",
        rate(postgres) / memory_rate
    );
    println!("  PostgreSQL store:");
    print!("{stats}");
    println!("  in-memory store:");
    print!("{memory_stats}");
    match peak_kib {
        Some(kib) => println!(
            "  worker peak memory (VmHWM):                 {:.1} MiB",
            kib as f64 / 1024.0
        ),
        None => println!("  worker peak memory: unavailable (no /proc)"),
    }
}

/// One worker run's Redis key prefix and PostgreSQL schema.
struct Namespace {
    prefix: String,
    schema: String,
}

impl Namespace {
    fn new(setup: &Setup, name: &str) -> Self {
        Self {
            prefix: format!("{}-{name}", setup.prefix),
            schema: format!("{}_{name}", setup.schema),
        }
    }

    async fn messaging(&self, setup: &Setup) -> MessagingService {
        let backend = RedisBackend::connect(
            RedisBackendConfig::new(&setup.redis).with_key_prefix(&self.prefix),
        )
        .await
        .unwrap_or_else(|error| {
            panic!(
                "cannot reach Redis at {} ({error}): start one and set REDIS_URL",
                setup.redis
            )
        });
        MessagingService::new(Arc::new(backend))
    }

    /// Publishes the events and waits until every notification is `sent`.
    async fn deliver(&self, setup: &Setup) -> Duration {
        let messaging = self.messaging(setup).await;
        let start = Instant::now();
        publish_events(&messaging, "user.registered", setup.events).await;
        let schema = self.schema.clone();
        let pool = setup.pool.clone();
        wait_until(setup.events, start, move || {
            let count =
                format!("SELECT count(*) FROM {schema}.notifications WHERE status = 'sent'");
            let pool = pool.clone();
            async move {
                sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(count))
                    .fetch_one(&pool)
                    .await
                    .map_or(0, |sent| sent as usize)
            }
        })
        .await;
        start.elapsed()
    }

    async fn remove(&self, setup: &Setup) {
        let messaging = self.messaging(setup).await;
        for topic in messaging.list_topics().await.unwrap_or_default() {
            let _ = messaging.delete_topic(&topic).await;
        }
        let drop = format!("DROP SCHEMA IF EXISTS {} CASCADE", self.schema);
        let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(drop))
            .execute(&setup.pool)
            .await;
    }
}

fn worker_config(setup: &Setup, name: &str, port: u16) -> PathBuf {
    let path = std::env::temp_dir().join(format!("{}-{name}.toml", setup.prefix));
    std::fs::write(
        &path,
        format!(
            "[worker]\nconcurrency = {}\n\n[smtp]\nhost = \"127.0.0.1\"\nport = {port}\nsecurity = \"none\"\nfrom = \"{FROM}\"\n",
            concurrency()
        ),
    )
    .expect("the worker configuration is written");
    path
}

/// Starts the release-built `messaging worker` and waits for `worker ready`.
async fn spawn_worker(setup: &Setup, namespace: &Namespace, config: &Path) -> Child {
    let mut worker = Command::new(env!("CARGO_BIN_EXE_messaging"))
        .args(["worker", "--no-metrics", "--config"])
        .arg(config)
        .env("REDIS_URL", &setup.redis)
        .env("MESSAGING_KEY_PREFIX", &namespace.prefix)
        .env("DATABASE_URL", &setup.database)
        .env("MESSAGING_DB_SCHEMA", &namespace.schema)
        .env("MESSAGING_LOG", "error")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("the worker starts");
    let mut lines = BufReader::new(worker.stderr.take().expect("piped")).lines();
    loop {
        let line = tokio::time::timeout(DEADLINE, lines.next_line())
            .await
            .expect("the worker gets ready")
            .expect("the worker's stderr")
            .expect("the worker exited before it was ready");
        if line.contains("worker ready") {
            break;
        }
    }
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    worker
}

async fn stop(worker: &mut Child) {
    if let Some(pid) = worker.id() {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status();
    }
    let _ = tokio::time::timeout(DEADLINE, worker.wait()).await;
}

/// The default listeners over Redis in this process, with an email channel
/// that only records, on the PostgreSQL store or the in-memory one: the emails
/// and how long until every notification was recorded as sent; on
/// PostgreSQL, what its tables saw per event.
async fn noop_pipeline(
    setup: &Setup,
    name: &str,
    postgres: bool,
    events: usize,
) -> (Vec<EmailMessage>, Duration, String) {
    let namespace = Namespace::new(setup, name);
    let messaging = namespace.messaging(setup).await;
    let email = RecordingChannel::<EmailMessage>::new();
    let mut postgres_store = None;
    let (notifications, timed): (NotificationService, Arc<dyn Report>) = if postgres {
        let store = PostgresStore::connect(
            PostgresStoreConfig::new(&setup.database)
                .with_schema(&namespace.schema)
                .with_group_commit(group_commit()),
        )
        .await
        .expect("PostgreSQL answers");
        store.migrate().await.expect("the migrations run");
        let timed = Arc::new(Timed::new(store.clone(), store.clone()));
        postgres_store = Some(store);
        (
            NotificationService::new(timed.clone(), timed.clone()),
            timed,
        )
    } else {
        let timed = Arc::new(Timed::new(
            InMemoryNotificationStore::new(),
            InMemoryTemplateStore::new(),
        ));
        (
            NotificationService::new(timed.clone(), timed.clone()),
            timed,
        )
    };
    let notifications = Arc::new(notifications.with_email(Arc::new(email.clone())));
    notifications
        .install_default_templates()
        .await
        .expect("templates install");
    notifications
        .listen_to_events_with(
            &messaging,
            &EventRules::defaults(),
            SubscribeOptions::new("notification").with_concurrency(concurrency()),
        )
        .await
        .expect("the listeners subscribe");
    let start = Instant::now();
    publish_events(&messaging, "user.registered", events).await;
    let counter = timed.clone();
    wait_until(events, start, move || {
        let sent = counter.sent();
        async move { sent }
    })
    .await;
    let elapsed = start.elapsed();
    messaging.shutdown().await;
    let mut stats = timed.report(events, elapsed);
    if let Some(store) = postgres_store {
        if let Some(group) = store.group_commit_stats() {
            stats.push_str(&format!(
                "    group commit: {} writes in {} transactions ({:.1} writes per commit, {:.2} commits per event, {:.2} ms per statement)\n",
                group.writes,
                group.batches,
                group.writes as f64 / group.batches.max(1) as f64,
                group.batches as f64 / events as f64,
                group.statement_micros as f64 / 1000.0 / group.batches.max(1) as f64
            ));
        }
        store.close().await;
        stats.push_str(&table_stats(setup, &namespace.schema, events).await);
    }
    namespace.remove(setup).await;
    (email.sent(), elapsed, stats)
}

/// What the PostgreSQL pipeline wrote and read per event, from the statistics
/// of its own schema's tables (flushed when the store's connections close).
async fn table_stats(setup: &Setup, schema: &str, events: usize) -> String {
    let query = "SELECT relname::text, n_tup_ins, n_tup_upd, n_tup_hot_upd, \
                 coalesce(idx_scan, 0) + coalesce(seq_scan, 0) \
                 FROM pg_stat_user_tables WHERE schemaname = $1 ORDER BY relname";
    let deadline = Instant::now() + Duration::from_secs(15);
    let rows = loop {
        let rows: Vec<(String, i64, i64, i64, i64)> = sqlx::query_as(query)
            .bind(schema)
            .fetch_all(&setup.pool)
            .await
            .unwrap_or_default();
        let inserted: i64 = rows
            .iter()
            .filter(|row| row.0 == "notifications")
            .map(|row| row.1)
            .sum();
        if inserted as usize >= events || Instant::now() > deadline {
            break rows;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let per_event = |value: i64| value as f64 / events as f64;
    let mut out = String::from("  tables (pg_stat_user_tables of its schema), per event:\n");
    for (table, inserts, updates, hot, scans) in rows {
        if inserts + updates + scans == 0 {
            continue;
        }
        out.push_str(&format!(
            "      {table:<22} {:.2} inserts, {:.2} updates ({:.2} HOT), {:.2} scans\n",
            per_event(inserts),
            per_event(updates),
            per_event(hot),
            per_event(scans)
        ));
    }
    out
}

/// Polls `count` until it reaches `events`.
async fn wait_until<F, Fut>(events: usize, start: Instant, count: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = usize>,
{
    loop {
        let done = count().await;
        if done >= events {
            return;
        }
        assert!(
            start.elapsed() < DEADLINE,
            "only {done} of {events} notifications recorded as sent"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Bare lettre: [`concurrency`] tasks, each with its own `AsyncSmtpConnection`
/// over a `TCP_NODELAY` stream, building and sending the pipeline's emails to
/// a fresh smtp-sink, `rounds` times over; emails accepted per second.
async fn lettre_baseline(emails: &[EmailMessage], rounds: usize) -> f64 {
    let sink = PostfixSink::start().await;
    let emails: Arc<Vec<EmailMessage>> =
        Arc::new((0..rounds).flat_map(|_| emails.iter().cloned()).collect());
    let next = Arc::new(AtomicUsize::new(0));
    let from: Mailbox = FROM.parse().expect("a sender");
    let start = Instant::now();
    let senders: Vec<_> = (0..concurrency())
        .map(|_| {
            let (emails, next, from, port) =
                (emails.clone(), next.clone(), from.clone(), sink.port);
            tokio::spawn(async move {
                let stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
                    .await
                    .expect("smtp-sink accepts");
                stream.set_nodelay(true).expect("TCP_NODELAY");
                let mut connection = AsyncSmtpConnection::connect_with_transport(
                    Box::new(stream),
                    &ClientId::Domain("bench.localhost".to_owned()),
                )
                .await
                .expect("smtp-sink greets");
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(email) = emails.get(i) else { break };
                    let message = lettre_message(&from, email);
                    connection
                        .send(message.envelope(), &message.formatted())
                        .await
                        .expect("smtp-sink accepts the message");
                }
                let _ = connection.quit().await;
            })
        })
        .collect();
    for sender in senders {
        sender.await.expect("a sender task");
    }
    let elapsed = start.elapsed();
    sink.wait_for_messages(emails.len()).await;
    emails.len() as f64 / elapsed.as_secs_f64()
}

/// The email as the SMTP channel builds it: sender, recipient with name,
/// subject, text and HTML alternatives.
fn lettre_message(from: &Mailbox, email: &EmailMessage) -> Message {
    let to = Mailbox::new(
        email.to.name().map(str::to_owned),
        email.to.address().parse().expect("a valid recipient"),
    );
    let builder = Message::builder()
        .from(from.clone())
        .to(to)
        .subject(email.subject.clone());
    match (&email.text, &email.html) {
        (Some(text), Some(html)) => builder.multipart(MultiPart::alternative_plain_html(
            text.clone(),
            html.clone(),
        )),
        (Some(text), None) => builder.singlepart(
            SinglePart::builder()
                .header(ContentType::TEXT_PLAIN)
                .body(text.clone()),
        ),
        (None, html) => builder.singlepart(
            SinglePart::builder()
                .header(ContentType::TEXT_HTML)
                .body(html.clone().unwrap_or_default()),
        ),
    }
    .expect("the message builds")
}

/// Postfix's smtp-sink on a free loopback port, counting the messages it
/// accepts (`-c` prints `mesg=N` after each final `.`); killed on drop.
struct PostfixSink {
    _child: Child,
    port: u16,
    messages: Arc<AtomicUsize>,
}

impl PostfixSink {
    async fn start() -> Self {
        assert!(
            Path::new(SMTP_SINK).exists(),
            "{SMTP_SINK} is missing: install Debian's `postfix` package (scripts/ci-prepare.sh does)"
        );
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free port")
            .port();
        let user = std::env::var("USER").unwrap_or_else(|_| "root".to_owned());
        let mut child = Command::new(SMTP_SINK)
            .args(["-c", "-u", &user])
            .arg(format!("127.0.0.1:{port}"))
            .arg("1000")
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("smtp-sink starts");
        let messages = Arc::new(AtomicUsize::new(0));
        let mut stdout = child.stdout.take().expect("piped");
        let counter = messages.clone();
        tokio::spawn(async move {
            let mut buffer = vec![0; 4096];
            let mut text = String::new();
            while let Ok(read) = stdout.read(&mut buffer).await {
                if read == 0 {
                    break;
                }
                text.push_str(&String::from_utf8_lossy(&buffer[..read]));
                // Complete records end in '\r'; keep a partial one for later.
                let end = text.rfind('\r').map_or(0, |at| at + 1);
                if let Some(count) = text[..end]
                    .rsplit("mesg=")
                    .next()
                    .and_then(|tail| tail.trim_end_matches('\r').parse().ok())
                {
                    counter.store(count, Ordering::Relaxed);
                }
                text.drain(..end);
            }
        });
        let deadline = Instant::now() + Duration::from_secs(10);
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            assert!(Instant::now() < deadline, "smtp-sink does not listen");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Self {
            _child: child,
            port,
            messages,
        }
    }

    /// Waits until smtp-sink has counted `count` messages.
    async fn wait_for_messages(&self, count: usize) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.messages.load(Ordering::Relaxed) < count {
            assert!(
                Instant::now() < deadline,
                "smtp-sink counted {} of {count} messages",
                self.messages.load(Ordering::Relaxed)
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// Publishes `events` registration events to `topic` in batches; how long it took.
async fn publish_events(messaging: &MessagingService, topic: &str, events: usize) -> Duration {
    let start = Instant::now();
    let mut next = 0;
    while next < events {
        let payloads = (next..(next + CHUNK).min(events))
            .map(|i| json!({"user_id": format!("bench-{i}"), "email": format!("user{i}@example.com"), "name": format!("User {i}")}))
            .collect();
        messaging
            .publish_batch(topic, payloads)
            .await
            .expect("publishing works");
        next += CHUNK;
    }
    start.elapsed()
}

/// The peak resident set of a process, from `/proc/PID/status`.
fn peak_memory_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// The store calls a send makes, each with a count and the time spent in it.
const CALLS: [&str; 6] = [
    "get_template",
    "find_by_idempotency_key",
    "record",
    "begin_attempt",
    "record_attempt",
    "other",
];

/// A store that times every call it passes on (to the PostgreSQL store or the
/// in-memory ones) and counts the notifications recorded `sent`: where an
/// event's time goes, and when the run is over, at no cost to poll.
struct Timed<N, T> {
    notifications: N,
    templates: T,
    calls: [AtomicU64; 6],
    micros: [AtomicU64; 6],
    sent: AtomicUsize,
}

/// What a [`Timed`] store tells about its run.
trait Report: Send + Sync {
    /// Notifications recorded `sent` so far.
    fn sent(&self) -> usize;
    /// Calls and time per event.
    fn report(&self, events: usize, elapsed: Duration) -> String;
}

impl<N, T> Timed<N, T> {
    fn new(notifications: N, templates: T) -> Self {
        Self {
            notifications,
            templates,
            calls: Default::default(),
            micros: Default::default(),
            sent: AtomicUsize::new(0),
        }
    }

    async fn time<R>(&self, call: &str, future: impl Future<Output = R>) -> R {
        let index = CALLS.iter().position(|name| *name == call).unwrap_or(5);
        let start = Instant::now();
        let result = future.await;
        self.calls[index].fetch_add(1, Ordering::Relaxed);
        self.micros[index].fetch_add(start.elapsed().as_micros() as u64, Ordering::Relaxed);
        result
    }
}

impl<N: Send + Sync, T: Send + Sync> Report for Timed<N, T> {
    fn sent(&self) -> usize {
        self.sent.load(Ordering::Relaxed)
    }

    fn report(&self, events: usize, elapsed: Duration) -> String {
        let mut out = format!(
            "    {} handlers: {:.2} ms of handler time per event; store calls per event:\n",
            concurrency(),
            elapsed.as_secs_f64() * 1000.0 * concurrency() as f64 / events as f64
        );
        let mut total = 0.0;
        for (index, call) in CALLS.iter().enumerate() {
            let calls = self.calls[index].load(Ordering::Relaxed);
            if calls == 0 || (index == 5 && calls < events as u64 / 10) {
                continue;
            }
            let millis = self.micros[index].load(Ordering::Relaxed) as f64 / 1000.0;
            total += millis / events as f64;
            out.push_str(&format!(
                "      {call:<24} {:.2} calls, {:>6.3} ms each, {:>6.3} ms per event\n",
                calls as f64 / events as f64,
                millis / calls as f64,
                millis / events as f64
            ));
        }
        out.push_str(&format!(
            "      {:<24} {:>32.3} ms per event\n",
            "all store calls", total
        ));
        out
    }
}

#[async_trait]
impl<N: NotificationStore, T: Send + Sync + 'static> NotificationStore for Timed<N, T> {
    async fn record(&self, notification: &Notification) -> Result<(), StoreError> {
        self.time("record", self.notifications.record(notification))
            .await
    }
    async fn record_batch(&self, notifications: &[Notification]) -> Result<(), StoreError> {
        self.time("other", self.notifications.record_batch(notifications))
            .await
    }
    async fn update_status(
        &self,
        id: Uuid,
        update: StatusUpdate,
    ) -> Result<Notification, StoreError> {
        let updated = self
            .time("other", self.notifications.update_status(id, update))
            .await;
        if matches!(&updated, Ok(notification) if notification.status == NotificationStatus::Sent) {
            self.sent.fetch_add(1, Ordering::Relaxed);
        }
        updated
    }
    async fn begin_attempt(
        &self,
        id: Uuid,
        seen_attempts: u32,
        at: DateTime<Utc>,
    ) -> Result<Notification, StoreError> {
        self.time(
            "begin_attempt",
            self.notifications.begin_attempt(id, seen_attempts, at),
        )
        .await
    }
    async fn record_attempt(&self, attempt: &DeliveryAttempt) -> Result<Notification, StoreError> {
        let updated = self
            .time("record_attempt", self.notifications.record_attempt(attempt))
            .await;
        if matches!(&updated, Ok(notification) if notification.status == NotificationStatus::Sent) {
            self.sent.fetch_add(1, Ordering::Relaxed);
        }
        updated
    }
    async fn list_attempts(
        &self,
        user_id: &str,
        notification_id: Uuid,
    ) -> Result<Vec<DeliveryAttempt>, StoreError> {
        self.time(
            "other",
            self.notifications.list_attempts(user_id, notification_id),
        )
        .await
    }
    async fn get_notification(&self, user_id: &str, id: Uuid) -> Result<Notification, StoreError> {
        self.time("other", self.notifications.get_notification(user_id, id))
            .await
    }
    async fn find_by_idempotency_key(
        &self,
        user_id: &str,
        key: &str,
    ) -> Result<Option<Notification>, StoreError> {
        self.time(
            "find_by_idempotency_key",
            self.notifications.find_by_idempotency_key(user_id, key),
        )
        .await
    }
    async fn list_for_user(
        &self,
        user_id: &str,
        query: &InboxQuery,
    ) -> Result<InboxPage, StoreError> {
        self.time("other", self.notifications.list_for_user(user_id, query))
            .await
    }
    async fn unread_count(&self, user_id: &str) -> Result<u64, StoreError> {
        self.time("other", self.notifications.unread_count(user_id))
            .await
    }
    async fn mark_read(&self, user_id: &str, id: Uuid) -> Result<(), StoreError> {
        self.time("other", self.notifications.mark_read(user_id, id))
            .await
    }
    async fn mark_unread(&self, user_id: &str, id: Uuid) -> Result<(), StoreError> {
        self.time("other", self.notifications.mark_unread(user_id, id))
            .await
    }
    async fn mark_all_read(&self, user_id: &str) -> Result<u64, StoreError> {
        self.time("other", self.notifications.mark_all_read(user_id))
            .await
    }
    async fn delete(&self, user_id: &str, id: Uuid) -> Result<(), StoreError> {
        self.time("other", self.notifications.delete(user_id, id))
            .await
    }
    async fn purge_older_than(&self, cutoff: DateTime<Utc>) -> Result<u64, StoreError> {
        self.time("other", self.notifications.purge_older_than(cutoff))
            .await
    }
}

#[async_trait]
impl<N: Send + Sync + 'static, T: TemplateStore> TemplateStore for Timed<N, T> {
    async fn get_template(
        &self,
        name: &str,
        locale: Option<&str>,
    ) -> Result<Option<MessageTemplate>, StoreError> {
        self.time("get_template", self.templates.get_template(name, locale))
            .await
    }
    async fn save(&self, template: &MessageTemplate) -> Result<MessageTemplate, StoreError> {
        self.time("other", self.templates.save(template)).await
    }
    async fn list(&self) -> Result<Vec<MessageTemplate>, StoreError> {
        self.time("other", self.templates.list()).await
    }
    async fn deactivate(&self, name: &str, locale: Option<&str>) -> Result<(), StoreError> {
        self.time("other", self.templates.deactivate(name, locale))
            .await
    }
}
