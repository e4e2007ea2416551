//! `make bench` figures of the transactional outbox, each beside a baseline
//! measured in the same run against the same PostgreSQL and Redis:
//!
//! 1. **publish cost in a transaction**: transactions of one business insert
//!    (`users`) per commit, alone, then with an outbox write (ordered, with and
//!    without `NOTIFY`); rows/s and the ratio to the business insert alone;
//! 2. **relay throughput**: a backlog of rows relayed to Redis by one relay,
//!    against `MessagingService::publish_messages` of the same messages in the
//!    same batch size straight to Redis;
//! 3. **commit-to-delivery latency**: one transaction at a time, from `COMMIT`
//!    returning to the subscriber's handler running (relay woken by `NOTIFY`),
//!    against a direct Redis publish, from the call to the handler; p50 and p99.
//!
//! ```text
//! DATABASE_URL=postgres://postgres@127.0.0.1:5432/test REDIS_URL=redis://127.0.0.1:6379 \
//!   cargo bench -p messaging-outbox --bench outbox
//! ```
//!
//! Everything lives in a fresh schema and Redis key prefix, removed at the end.
//! `BENCH_SCALE` (default 1) multiplies the row counts.

use std::sync::Arc;
use std::time::{Duration, Instant};

use messaging_core::{HandlerError, MessagingService, SubscribeOptions};
use messaging_model::Message;
use messaging_outbox::{Outbox, OutboxMessage, Relay, RelayConfig};
use messaging_redis::{RedisBackend, RedisBackendConfig};
use serde_json::json;
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::{AssertSqlSafe, Connection, PgConnection};
use tokio::sync::mpsc;

const TRANSACTIONS: usize = 3_000;
const BACKLOG: usize = 20_000;
const BATCH: usize = 100;
const LATENCY_SAMPLES: usize = 500;
const TOPIC: &str = "bench.outbox";

fn main() {
    let (Ok(database), Ok(redis)) = (std::env::var("DATABASE_URL"), std::env::var("REDIS_URL"))
    else {
        eprintln!(
            "DATABASE_URL and REDIS_URL must be set, e.g. DATABASE_URL=postgres://postgres@127.0.0.1:5432/test \
             REDIS_URL=redis://127.0.0.1:6379 cargo bench -p messaging-outbox (make bench sets both)"
        );
        std::process::exit(2);
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(run(database, redis));
}

struct Bench {
    pool: PgPool,
    outbox: Outbox,
    schema: String,
    service: Arc<MessagingService>,
    scale: usize,
}

async fn run(database: String, redis: String) {
    let id = uuid::Uuid::now_v7().simple().to_string();
    let schema = format!("bench_outbox_{}", &id[..20]);
    let scale: usize = std::env::var("BENCH_SCALE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1)
        .max(1);
    let pool = PgPoolOptions::new()
        .max_connections(6)
        .connect(&database)
        .await
        .expect("connect to DATABASE_URL");
    let outbox = Outbox::in_schema(&schema).expect("schema name");
    messaging_outbox::migrate(&pool, &outbox)
        .await
        .expect("migrate");
    sqlx::raw_sql(AssertSqlSafe(format!(
        "CREATE TABLE {schema}.users (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, \
         email text NOT NULL UNIQUE, created_at timestamptz NOT NULL DEFAULT now())"
    )))
    .execute(&pool)
    .await
    .expect("create users");
    let backend = RedisBackend::connect(
        RedisBackendConfig::new(&redis).with_key_prefix(format!("bench-outbox-{id}")),
    )
    .await
    .expect("connect to REDIS_URL");
    let service = Arc::new(MessagingService::new(Arc::new(backend)));
    println!("messaging-outbox bench: schema {schema}, scale {scale}");
    println!("load average before: {}", load_average());
    let bench = Bench {
        pool: pool.clone(),
        outbox,
        schema: schema.clone(),
        service: service.clone(),
        scale,
    };
    let outcome = tokio::spawn(async move {
        bench.publish_cost().await;
        bench.relay_throughput().await;
        bench.latency().await;
    })
    .await;
    service.shutdown().await;
    for topic in service.list_topics().await.unwrap_or_default() {
        let _ = service.delete_topic(&topic).await;
    }
    pool.close().await;
    let mut admin = PgConnection::connect(&database)
        .await
        .expect("connect to clean up");
    sqlx::raw_sql(AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
        .execute(&mut admin)
        .await
        .expect("drop the bench schema");
    admin.close().await.ok();
    println!("load average after: {}", load_average());
    if let Err(error) = outcome {
        std::panic::resume_unwind(error.into_panic());
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Write {
    BusinessOnly,
    Outbox,
    OutboxNoNotify,
}

impl Bench {
    async fn transactions(&self, write: Write, round: &str) -> f64 {
        let n = TRANSACTIONS * self.scale;
        let outbox = match write {
            Write::OutboxNoNotify => self.outbox.clone().with_notify(false),
            _ => self.outbox.clone(),
        };
        let insert = format!(
            "INSERT INTO {}.users (email) VALUES ($1) RETURNING id",
            self.schema
        );
        let mut conn = self.pool.acquire().await.expect("a connection");
        let started = Instant::now();
        for i in 0..n {
            let mut tx = conn.begin().await.expect("begin");
            let user: i64 = sqlx::query_scalar(AssertSqlSafe(insert.as_str()))
                .bind(format!("user-{round}-{i}@example.com"))
                .fetch_one(&mut *tx)
                .await
                .expect("insert the user");
            if write != Write::BusinessOnly {
                outbox
                    .publish_ordered(
                        &mut tx,
                        "user.registered",
                        &user.to_string(),
                        json!({"user_id": user, "email": format!("user-{round}-{i}@example.com")}),
                    )
                    .await
                    .expect("outbox write");
            }
            tx.commit().await.expect("commit");
        }
        n as f64 / started.elapsed().as_secs_f64()
    }

    async fn publish_cost(&self) {
        println!(
            "\n## publish cost inside a transaction ({} transactions each, one connection)",
            TRANSACTIONS * self.scale
        );
        // Warm up, then alternate, keeping the best of two of each.
        self.transactions(Write::BusinessOnly, "warm").await;
        let mut best = [0f64; 3];
        for round in 0..2 {
            for (slot, write) in [Write::BusinessOnly, Write::Outbox, Write::OutboxNoNotify]
                .into_iter()
                .enumerate()
            {
                let rate = self.transactions(write, &format!("r{round}w{slot}")).await;
                best[slot] = best[slot].max(rate);
            }
        }
        println!(
            "business insert alone:               {:>8.0} tx/s (baseline)",
            best[0]
        );
        println!(
            "+ outbox write (ordered, NOTIFY):     {:>8.0} tx/s  ratio {:.2}",
            best[1],
            best[1] / best[0]
        );
        println!(
            "+ outbox write (ordered, no NOTIFY):  {:>8.0} tx/s  ratio {:.2}",
            best[2],
            best[2] / best[0]
        );
        sqlx::raw_sql(AssertSqlSafe(format!("TRUNCATE {}", self.outbox.table())))
            .execute(&self.pool)
            .await
            .expect("empty the outbox");
    }

    async fn relay_throughput(&self) {
        let n = BACKLOG * self.scale;
        println!("\n## relay throughput ({n} rows, batch {BATCH}, one relay)");
        let payload = |i: usize| json!({"user_id": i, "email": format!("user-{i}@example.com")});
        // Baseline: the same messages straight to Redis, BATCH per call.
        let messages: Vec<Message> = (0..n)
            .map(|i| {
                OutboxMessage::new(TOPIC, payload(i))
                    .unwrap()
                    .message()
                    .clone()
            })
            .collect();
        let started = Instant::now();
        for chunk in messages.chunks(BATCH) {
            self.service
                .publish_messages(chunk)
                .await
                .expect("direct publish");
        }
        let direct = n as f64 / started.elapsed().as_secs_f64();

        for chunk in (0..n).collect::<Vec<_>>().chunks(1_000) {
            let batch: Vec<OutboxMessage> = chunk
                .iter()
                .map(|&i| {
                    OutboxMessage::new(TOPIC, payload(i))
                        .and_then(|m| m.with_ordering_key(format!("user-{}", i % 1_000)))
                        .unwrap()
                })
                .collect();
            let mut tx = self.pool.begin().await.expect("begin");
            self.outbox
                .publish_batch(&mut tx, batch)
                .await
                .expect("backlog");
            tx.commit().await.expect("commit");
        }
        let mut relay = Relay::new(
            self.outbox.clone(),
            self.pool.clone(),
            self.service.clone(),
            RelayConfig::default().with_batch_size(BATCH),
        )
        .expect("relay");
        let started = Instant::now();
        let mut relayed = 0;
        while relayed < n {
            let round = relay.relay_once().await.expect("relay round");
            relayed += round.published;
            assert!(!round.is_idle(), "the backlog ran dry at {relayed}");
        }
        let relay_rate = n as f64 / started.elapsed().as_secs_f64();
        println!("direct publish_messages to Redis:    {direct:>8.0} msg/s (baseline)");
        println!(
            "relay (claim, take, publish, mark):  {relay_rate:>8.0} msg/s  ratio {:.2}",
            relay_rate / direct
        );
        sqlx::raw_sql(AssertSqlSafe(format!("TRUNCATE {}", self.outbox.table())))
            .execute(&self.pool)
            .await
            .expect("empty the outbox");
    }

    async fn latency(&self) {
        let samples = LATENCY_SAMPLES * self.scale;
        println!("\n## commit-to-delivery latency ({samples} messages, one at a time)");
        let (seen, mut delivered) = mpsc::unbounded_channel::<(uuid::Uuid, Instant)>();
        self.service
            .subscribe_with(
                "bench.latency",
                SubscribeOptions::new("bench").with_concurrency(1),
                move |message: Message| {
                    let seen = seen.clone();
                    async move {
                        seen.send((message.id, Instant::now()))
                            .map_err(HandlerError::permanent)
                    }
                },
            )
            .await
            .expect("subscribe");
        let mut direct = Vec::with_capacity(samples);
        for i in 0..samples + 20 {
            let started = Instant::now();
            let id = self
                .service
                .publish("bench.latency", json!({"n": i}))
                .await
                .expect("publish");
            let at = wait(&mut delivered, id).await;
            if i >= 20 {
                direct.push(at - started);
            }
        }
        let relay = Relay::new(
            self.outbox.clone(),
            self.pool.clone(),
            self.service.clone(),
            RelayConfig::default(),
        )
        .expect("relay")
        .spawn();
        let mut outbox = Vec::with_capacity(samples);
        for i in 0..samples + 20 {
            let mut tx = self.pool.begin().await.expect("begin");
            let id = self
                .outbox
                .publish(&mut tx, "bench.latency", json!({"n": i}))
                .await
                .expect("outbox write");
            tx.commit().await.expect("commit");
            let committed = Instant::now();
            let at = wait(&mut delivered, id).await;
            if i >= 20 {
                outbox.push(at - committed);
            }
        }
        relay.stop().await;
        let (d50, d99) = percentiles(&mut direct);
        let (o50, o99) = percentiles(&mut outbox);
        println!(
            "direct publish -> handler:           p50 {:>7.2} ms  p99 {:>7.2} ms (baseline)",
            ms(d50),
            ms(d99)
        );
        println!(
            "outbox commit -> relay -> handler:   p50 {:>7.2} ms  p99 {:>7.2} ms  ratio p50 {:.2}, p99 {:.2}",
            ms(o50),
            ms(o99),
            ms(o50) / ms(d50),
            ms(o99) / ms(d99)
        );
    }
}

/// When the handler ran for `id`.
async fn wait(
    delivered: &mut mpsc::UnboundedReceiver<(uuid::Uuid, Instant)>,
    id: uuid::Uuid,
) -> Instant {
    loop {
        let (got, at) = tokio::time::timeout(Duration::from_secs(30), delivered.recv())
            .await
            .expect("delivered in time")
            .expect("subscriber runs");
        if got == id {
            return at;
        }
    }
}

fn percentiles(samples: &mut [Duration]) -> (Duration, Duration) {
    samples.sort_unstable();
    let at = |q: f64| samples[((samples.len() as f64 - 1.0) * q).round() as usize];
    (at(0.50), at(0.99))
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1_000.0
}

/// Other work on the machine shows in the figures: print it beside them.
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
