//! Three `messaging relay` processes, one of them SIGKILLed again and again,
//! move 10,000 outbox rows into Redis: lost 0, every id delivered at least
//! once, duplicates only for rows a killed relay had begun to publish, order per
//! ordering key kept.
//!
//! A writer commits 10,000 rows over 20 ordering keys (500 transactions of 20
//! rows) while three real `messaging relay` binaries run against the test's
//! schema and Redis prefix; relay 0 is SIGKILLed 10 times (the k-th once
//! k/11 of the rows are published) and restarted. A subscriber of its own group, handling one
//! message at a time, records every delivery. A trigger makes each mark take
//! 20 ms (and lets the server roll back a mark whose relay died meanwhile), so
//! some kills land between a publish and its mark. Afterwards:
//!
//! - every row is `published` and every row's id was delivered (lost 0);
//! - no id was delivered more often than its row's `attempts`, the publishes
//!   each relay counted (committed) before it published: a duplicate is a row
//!   whose earlier attempt never reached its mark, i.e. whose relay was killed
//!   between the publish and the mark;
//! - rows with more than one attempt are at most `KILLS × --batch-size` (the
//!   rows in flight at each kill);
//! - per key, first deliveries come in write order.
//!
//! Needs `REDIS_URL` and `DATABASE_URL`.
//! Run: `cargo test -p messaging-cli --test outbox_relays -- --nocapture` (prints the figures).

mod support;

use std::collections::{BTreeMap, HashMap};

use messaging_core::{HandlerError, SubscribeOptions};
use messaging_model::Message;
use messaging_outbox::{Outbox, OutboxMessage};
use serde_json::json;
use support::Env;

const ROWS: usize = 10_000;
const KEYS: usize = 20;
const PER_TRANSACTION: usize = 20;
const KILLS: usize = 10;
const BATCH: usize = 50;
const TOPIC: &str = "outbox.item";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_relays_lose_nothing_and_duplicate_only_what_they_were_publishing() {
    support::run(|env| Box::pin(scenario(env))).await;
}

async fn scenario(env: &Env) {
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(2)
        .connect(&support::database_url())
        .await
        .expect("connect to DATABASE_URL");
    let outbox = Outbox::in_schema(&env.schema).expect("the test schema is a valid name");
    messaging_outbox::migrate(&pool, &outbox)
        .await
        .expect("migrate");
    // Widen the window the kills aim at: each mark takes 20 ms, and a mark
    // whose relay died meanwhile is rolled back (the server checks the client
    // while it waits), as if the relay had died just before sending it.
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "CREATE FUNCTION {schema}.slow_mark() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
             PERFORM set_config('client_connection_check_interval', '5ms', true); \
             PERFORM pg_sleep(0.02); RETURN NULL; END $$; \
         CREATE TRIGGER slow_mark BEFORE UPDATE OF state ON {table} \
             FOR EACH STATEMENT EXECUTE FUNCTION {schema}.slow_mark();",
        schema = env.schema,
        table = outbox.table()
    )))
    .execute(&pool)
    .await
    .expect("the slow-mark trigger is created");

    let (seen, mut deliveries) = tokio::sync::mpsc::unbounded_channel::<Message>();
    env.messaging
        .subscribe_with(
            TOPIC,
            SubscribeOptions::new("outbox-check").with_concurrency(1),
            move |message: Message| {
                let seen = seen.clone();
                async move { seen.send(message).map_err(HandlerError::permanent) }
            },
        )
        .await
        .expect("subscribe");

    let batch = BATCH.to_string();
    let relay_args = ["--batch-size", batch.as_str(), "--poll-interval", "200ms"];
    let mut relays = Vec::new();
    for _ in 0..3 {
        relays.push(env.relay(&relay_args).await);
    }

    let writer = {
        let (pool, outbox) = (pool.clone(), outbox.clone());
        tokio::spawn(async move {
            for t in 0..ROWS / PER_TRANSACTION {
                let messages: Vec<OutboxMessage> = (0..PER_TRANSACTION)
                    .map(|i| {
                        let row = t * PER_TRANSACTION + i;
                        let key = format!("key-{}", row % KEYS);
                        OutboxMessage::new(TOPIC, json!({"key": key, "n": row / KEYS}))
                            .and_then(|m| m.with_ordering_key(key))
                            .expect("a valid message")
                    })
                    .collect();
                let mut tx = pool.begin().await.expect("begin");
                outbox
                    .publish_batch(&mut tx, messages)
                    .await
                    .expect("the rows are written");
                tx.commit().await.expect("commit");
            }
        })
    };

    let published = format!(
        "SELECT count(*) FROM {} WHERE state = 'published'",
        outbox.table()
    );
    // Kill k once k/(KILLS + 1) of the rows are published, so all kills land
    // before the end whatever the pace.
    let stretch = (ROWS / (KILLS + 1)) as i64;
    for kill in 1..=KILLS {
        let target = stretch * kill as i64;
        env.eventually("progress before the next kill", || async {
            (env.count(&published).await >= target).then_some(())
        })
        .await;
        let killed = relays.remove(0);
        killed.kill().await;
        relays.insert(0, env.relay(&relay_args).await);
    }
    writer.await.expect("the writer finishes");
    env.eventually("every row published", || async {
        (env.count(&published).await == ROWS as i64).then_some(())
    })
    .await;
    for relay in relays {
        let (code, log) = relay.terminate().await;
        assert_eq!(code, Some(0), "{}", log.join("\n"));
        assert!(
            log.iter().any(|line| line.contains("relay stopped")),
            "{}",
            log.join("\n")
        );
    }

    // Everything relayed is in the stream before this: once the subscriber
    // reaches it, every delivery has been recorded.
    let sentinel = env
        .messaging
        .publish(TOPIC, json!({"sentinel": true}))
        .await
        .expect("publish the sentinel");
    let mut count: HashMap<uuid::Uuid, usize> = HashMap::new();
    let mut last_n: BTreeMap<String, i64> = BTreeMap::new();
    let mut order_breaks = Vec::new();
    loop {
        let message = tokio::time::timeout(support::DEADLINE * 4, deliveries.recv())
            .await
            .expect("the subscriber keeps up")
            .expect("the subscriber runs");
        if message.id == sentinel {
            break;
        }
        let first = {
            let seen = count.entry(message.id).or_default();
            *seen += 1;
            *seen == 1
        };
        if first {
            let key = message.payload["key"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            let n = message.payload["n"].as_i64().unwrap_or(-1);
            if let Some(previous) = last_n.insert(key.clone(), n)
                && previous >= n
            {
                order_breaks.push(format!("{key}: {n} after {previous}"));
            }
        }
    }

    let attempts: Vec<(uuid::Uuid, i32)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT id, attempts FROM {}",
        outbox.table()
    )))
    .fetch_all(&pool)
    .await
    .expect("read the attempts");
    pool.close().await;

    let lost: Vec<_> = attempts
        .iter()
        .filter(|(id, _)| !count.contains_key(id))
        .collect();
    let duplicated = count.values().filter(|&&n| n > 1).count();
    let duplicate_deliveries: usize = count.values().map(|n| n.saturating_sub(1)).sum();
    let retried_rows = attempts.iter().filter(|(_, a)| *a > 1).count();
    let over: Vec<_> = attempts
        .iter()
        .filter(|(id, a)| count.get(id).copied().unwrap_or(0) > usize::try_from(*a).unwrap_or(0))
        .collect();
    println!(
        "{ROWS} rows over {KEYS} keys, 3 relays, {KILLS} SIGKILLs: delivered {} distinct ids, \
         lost {}, duplicated ids {duplicated} ({duplicate_deliveries} extra deliveries), \
         rows with more than one attempt {retried_rows}, order breaks {}",
        count.len(),
        lost.len(),
        order_breaks.len()
    );
    assert_eq!(attempts.len(), ROWS, "every row written");
    assert!(lost.is_empty(), "never delivered: {lost:?}");
    assert_eq!(count.len(), ROWS, "no id delivered that was not written");
    assert!(
        over.is_empty(),
        "delivered more often than their relays attempted: {over:?}"
    );
    assert!(
        retried_rows <= KILLS * BATCH,
        "{retried_rows} rows attempted more than once, but only {KILLS} kills of {BATCH} rows in flight"
    );
    assert!(
        order_breaks.is_empty(),
        "order per key broken: {order_breaks:?}"
    );
}
