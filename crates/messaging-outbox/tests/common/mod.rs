//! An outbox in a schema of its own and a Redis key prefix of its own per test,
//! both removed at the end, pass or fail.

#![allow(dead_code, unreachable_pub)]

use std::sync::Arc;
use std::time::Duration;

use messaging_core::{HandlerError, MessagingService, SubscribeOptions};
use messaging_model::Message;
use messaging_outbox::Outbox;
use messaging_redis::{RedisBackend, RedisBackendConfig};
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::{AssertSqlSafe, Connection, PgConnection};
use tokio::sync::mpsc;

/// How long any wait of a test may last.
pub const DEADLINE: Duration = Duration::from_secs(30);

pub use messaging_test_support::{database_url, redis_url};

/// One test's outbox (migrated), pool and Redis-backed service.
pub struct Fixture {
    pub schema: String,
    pub outbox: Outbox,
    pub pool: PgPool,
    pub service: Arc<MessagingService>,
}

impl Fixture {
    pub async fn start() -> Self {
        let id = uuid::Uuid::now_v7().simple().to_string();
        let schema = format!("t_outbox_{}", &id[..24]);
        let url = database_url();
        let pool = PgPoolOptions::new()
            .max_connections(8)
            .connect(&url)
            .await
            .unwrap_or_else(|error| panic!("cannot connect to DATABASE_URL {url}: {error}"));
        let outbox = Outbox::in_schema(&schema).unwrap();
        messaging_outbox::migrate(&pool, &outbox)
            .await
            .expect("migrate");
        let redis = redis_url();
        let backend = RedisBackend::connect(
            RedisBackendConfig::new(&redis).with_key_prefix(format!("outbox-test-{id}")),
        )
        .await
        .unwrap_or_else(|error| panic!("cannot reach Redis at {redis}: {error}"));
        Self {
            schema,
            outbox,
            pool,
            service: Arc::new(MessagingService::new(Arc::new(backend))),
        }
    }

    /// Runs `SQL`, with `{table}` standing for the outbox table.
    pub async fn execute(&self, sql: &str) {
        let sql = sql.replace("{table}", self.outbox.table());
        sqlx::raw_sql(AssertSqlSafe(sql))
            .execute(&self.pool)
            .await
            .expect("the statement runs");
    }

    /// The first column of the first row of `sql` (`{table}` as in [`Fixture::execute`]).
    pub async fn scalar(&self, sql: &str) -> i64 {
        let sql = sql.replace("{table}", self.outbox.table());
        sqlx::query_scalar(AssertSqlSafe(sql))
            .fetch_one(&self.pool)
            .await
            .expect("the query runs")
    }

    /// Every message of `topic` handled by a subscriber of its own group, in
    /// the order handled (one at a time, so in stream order).
    pub async fn subscribe(&self, topic: &str) -> mpsc::UnboundedReceiver<Message> {
        let (seen, received) = mpsc::unbounded_channel();
        self.service
            .subscribe_with(
                topic,
                SubscribeOptions::new("outbox-test").with_concurrency(1),
                move |message: Message| {
                    let seen = seen.clone();
                    async move { seen.send(message).map_err(HandlerError::permanent) }
                },
            )
            .await
            .expect("subscribe");
        received
    }

    /// Polls `check` every 20 ms until it returns a value, up to [`DEADLINE`].
    pub async fn eventually<T, F, Fut>(&self, what: &str, check: F) -> T
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Option<T>>,
    {
        messaging_test_support::eventually(what, DEADLINE, Duration::from_millis(20), check).await
    }

    /// Stops the subscriptions, deletes the Redis keys and drops the schema.
    pub async fn cleanup(self) {
        self.service.shutdown().await;
        for topic in self.service.list_topics().await.unwrap_or_default() {
            let _ = self.service.delete_topic(&topic).await;
        }
        self.pool.close().await;
        drop_schema(&self.schema).await;
    }
}

/// The next message, up to [`DEADLINE`].
pub async fn next(received: &mut mpsc::UnboundedReceiver<Message>) -> Message {
    tokio::time::timeout(DEADLINE, received.recv())
        .await
        .expect("a message arrives in time")
        .expect("the subscriber runs")
}

/// Drops `schema` over a connection of its own.
pub async fn drop_schema(schema: &str) {
    assert!(schema.starts_with("t_"), "only test schemas are dropped");
    let mut conn = PgConnection::connect(&database_url())
        .await
        .expect("connect to drop the test schema");
    sqlx::raw_sql(AssertSqlSafe(format!(
        "DROP SCHEMA IF EXISTS {schema} CASCADE"
    )))
    .execute(&mut conn)
    .await
    .expect("drop the test schema");
    conn.close().await.ok();
}

/// Runs `test` with a fresh [`Fixture`], cleaning up even when it panics.
pub async fn run<F>(test: F)
where
    F: for<'a> FnOnce(&'a Fixture) -> std::pin::Pin<Box<dyn Future<Output = ()> + Send + 'a>>,
{
    use futures::FutureExt;
    let fixture = Fixture::start().await;
    let outcome = std::panic::AssertUnwindSafe(test(&fixture))
        .catch_unwind()
        .await;
    fixture.cleanup().await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}
