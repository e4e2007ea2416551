//! The outbox against the real PostgreSQL and Redis: what commits is relayed
//! (once, with its id, in order per key), what rolls back is not, and a relay
//! that fails between the publish and the mark publishes again with the same id.
//!
//! ```text
//! DATABASE_URL=postgres://postgres@127.0.0.1:5432/test REDIS_URL=redis://127.0.0.1:6379 \
//!   cargo test -p messaging-outbox --test outbox
//! ```

mod common;

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use chrono::Utc;
use common::{Fixture, next};
use messaging_core::TRACEPARENT_KEY;
use messaging_outbox::{OutboxError, OutboxMessage, Relay, RelayConfig};
use serde_json::json;

fn relay(fixture: &Fixture, config: RelayConfig) -> Relay {
    Relay::new(
        fixture.outbox.clone(),
        fixture.pool.clone(),
        fixture.service.clone(),
        config,
    )
    .unwrap()
}

/// Publishes a sentinel and waits for it: every message relayed before it has
/// been handled by then, so what `received` holds is all there is.
async fn drain_up_to_sentinel(
    fixture: &Fixture,
    relay: &mut Relay,
    received: &mut tokio::sync::mpsc::UnboundedReceiver<messaging_model::Message>,
    topic: &str,
) -> Vec<messaging_model::Message> {
    let mut tx = fixture.pool.begin().await.unwrap();
    let sentinel = fixture
        .outbox
        .publish(&mut tx, topic, json!({"sentinel": true}))
        .await
        .unwrap();
    tx.commit().await.unwrap();
    while !relay.relay_once().await.unwrap().is_idle() {}
    let mut before = Vec::new();
    loop {
        let message = next(received).await;
        if message.id == sentinel {
            return before;
        }
        before.push(message);
    }
}

#[tokio::test]
async fn a_rolled_back_transaction_publishes_nothing() {
    common::run(|f| {
        Box::pin(async move {
            let mut received = f.subscribe("user.registered").await;
            let mut tx = f.pool.begin().await.unwrap();
            f.outbox
                .publish(&mut tx, "user.registered", json!({"user_id": 1}))
                .await
                .unwrap();
            tx.rollback().await.unwrap();

            let mut relay = relay(f, RelayConfig::default());
            assert!(relay.relay_once().await.unwrap().is_idle());
            assert_eq!(f.scalar("SELECT count(*) FROM {table}").await, 0);
            let before =
                drain_up_to_sentinel(f, &mut relay, &mut received, "user.registered").await;
            assert!(before.is_empty(), "rolled back but delivered: {before:?}");
        })
    })
    .await;
}

#[tokio::test]
async fn a_committed_message_is_delivered_once_with_the_id_given_at_write_time() {
    common::run(|f| {
        Box::pin(async move {
            let mut received = f.subscribe("user.registered").await;
            let mut tx = f.pool.begin().await.unwrap();
            let message = OutboxMessage::new("user.registered", json!({"user_id": 7}))
                .unwrap()
                .with_metadata("tenant", "acme")
                .unwrap()
                .with_max_retry(5)
                .unwrap();
            let traceparent = message.message().metadata[TRACEPARENT_KEY].clone();
            let id = f.outbox.publish_message(&mut tx, message).await.unwrap();
            tx.commit().await.unwrap();

            let mut relay = relay(f, RelayConfig::default());
            let round = relay.relay_once().await.unwrap();
            assert_eq!(round.published, 1);
            let before =
                drain_up_to_sentinel(f, &mut relay, &mut received, "user.registered").await;
            assert_eq!(before.len(), 1, "delivered once: {before:?}");
            let delivered = &before[0];
            assert_eq!(delivered.id, id);
            assert_eq!(delivered.payload, json!({"user_id": 7}));
            assert_eq!(delivered.metadata["tenant"], "acme");
            assert_eq!(delivered.metadata[TRACEPARENT_KEY], traceparent);
            assert_eq!(delivered.max_retry, 5);
            let stats = f.outbox.stats(&f.pool).await.unwrap();
            assert_eq!((stats.pending, stats.published, stats.failed), (0, 2, 0));
            assert_eq!(
                f.scalar("SELECT count(*) FROM {table} WHERE attempts = 1")
                    .await,
                2
            );
        })
    })
    .await;
}

#[tokio::test]
async fn a_relay_failing_between_publish_and_mark_republishes_with_the_same_id() {
    common::run(|f| {
        Box::pin(async move {
            let mut received = f.subscribe("orders.placed").await;
            let mut tx = f.pool.begin().await.unwrap();
            let id = f
                .outbox
                .publish_ordered(&mut tx, "orders.placed", "order-1", json!({"n": 1}))
                .await
                .unwrap();
            tx.commit().await.unwrap();
            // The mark fails as if the relay died right after publishing.
            f.execute(
                "CREATE FUNCTION {table}_refuse() RETURNS trigger LANGUAGE plpgsql AS \
                 $$ BEGIN RAISE EXCEPTION 'relay died'; END $$; \
                 CREATE TRIGGER refuse_mark BEFORE UPDATE OF state ON {table} \
                 FOR EACH ROW EXECUTE FUNCTION {table}_refuse();",
            )
            .await;
            let mut relay = relay(f, RelayConfig::default());
            let error = relay.relay_once().await.unwrap_err();
            assert!(matches!(error, OutboxError::Database { .. }), "{error:?}");
            assert_eq!(
                next(&mut received).await.id,
                id,
                "published before the mark"
            );
            assert_eq!(
                f.scalar("SELECT count(*) FROM {table} WHERE state = 'pending' AND attempts = 1")
                    .await,
                1
            );

            f.execute("DROP TRIGGER refuse_mark ON {table}").await;
            // Another relay (the failed one's locks went with its connection).
            let mut other = self::relay(f, RelayConfig::default());
            assert_eq!(other.relay_once().await.unwrap().published, 1);
            let again = drain_up_to_sentinel(f, &mut other, &mut received, "orders.placed").await;
            assert_eq!(again.len(), 1);
            assert_eq!(again[0].id, id, "the same id the second time");
            assert_eq!(
                f.scalar("SELECT attempts::bigint FROM {table} WHERE ordering_key = 'order-1'")
                    .await,
                2,
                "the duplicate shows in the attempt count"
            );
        })
    })
    .await;
}

/// Two transactions write the same key; the second waits for the first to
/// commit, so its row comes after every row of the first, in `seq` and in
/// delivery, even though it wrote before the first's last row.
#[tokio::test]
async fn writers_of_one_key_wait_for_each_other_so_order_is_commit_order() {
    common::run(|f| {
        Box::pin(async move {
            let mut received = f.subscribe("user.updated").await;
            let mut first = f.pool.begin().await.unwrap();
            f.outbox
                .publish_ordered(
                    &mut first,
                    "user.updated",
                    "user-1",
                    json!({"step": "first-a"}),
                )
                .await
                .unwrap();
            let outbox = f.outbox.clone();
            let pool = f.pool.clone();
            let second = tokio::spawn(async move {
                let mut tx = pool.begin().await.unwrap();
                outbox
                    .publish_ordered(&mut tx, "user.updated", "user-1", json!({"step": "second"}))
                    .await
                    .unwrap();
                tx.commit().await.unwrap();
            });
            f.eventually("the second writer waits for the key", || async {
                let waiting = f
                    .scalar(&format!(
                        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted \
                         AND objsubid = 2 AND classid::bigint = \
                         (hashtext('messaging-outbox:writers:{}')::bigint & 4294967295)",
                        f.schema
                    ))
                    .await;
                (waiting > 0).then_some(())
            })
            .await;
            f.outbox
                .publish_ordered(
                    &mut first,
                    "user.updated",
                    "user-1",
                    json!({"step": "first-b"}),
                )
                .await
                .unwrap();
            first.commit().await.unwrap();
            second.await.unwrap();

            let mut relay = relay(f, RelayConfig::default());
            while !relay.relay_once().await.unwrap().is_idle() {}
            let steps: Vec<_> = [
                next(&mut received).await,
                next(&mut received).await,
                next(&mut received).await,
            ]
            .iter()
            .map(|m| m.payload["step"].as_str().unwrap().to_owned())
            .collect();
            assert_eq!(steps, ["first-a", "first-b", "second"]);
        })
    })
    .await;
}

#[tokio::test]
async fn a_batch_keeps_its_order_and_ids_and_a_delayed_message_is_never_early() {
    common::run(|f| {
        Box::pin(async move {
            let mut received = f.subscribe("batch.item").await;
            let messages: Vec<OutboxMessage> = (0..50)
                .map(|n| {
                    OutboxMessage::new("batch.item", json!({"n": n}))
                        .unwrap()
                        .with_ordering_key(format!("k{}", n % 3))
                        .unwrap()
                })
                .collect();
            let expected: Vec<_> = messages.iter().map(OutboxMessage::id).collect();
            let delay = Duration::from_millis(1500);
            let mut tx = f.pool.begin().await.unwrap();
            let ids = f.outbox.publish_batch(&mut tx, messages).await.unwrap();
            let delayed = f
                .outbox
                .publish_delayed(&mut tx, "batch.item", json!({"delayed": true}), delay)
                .await
                .unwrap();
            tx.commit().await.unwrap();
            assert_eq!(ids, expected);
            let seqs: Vec<i64> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                "SELECT seq FROM {} WHERE deliver_at IS NULL ORDER BY id",
                f.outbox.table()
            )))
            .fetch_all(&f.pool)
            .await
            .unwrap();
            assert!(seqs.is_sorted(), "rows are numbered in batch order");
            let deliver_at: chrono::DateTime<Utc> = sqlx::query_scalar(sqlx::AssertSqlSafe(
                format!("SELECT deliver_at FROM {} WHERE id = $1", f.outbox.table()),
            ))
            .bind(delayed)
            .fetch_one(&f.pool)
            .await
            .unwrap();

            let mut relay = relay(f, RelayConfig::default().with_batch_size(20));
            while !relay.relay_once().await.unwrap().is_idle() {}
            let mut per_key: BTreeMap<String, Vec<uuid::Uuid>> = BTreeMap::new();
            for _ in 0..50 {
                let message = next(&mut received).await;
                let key = format!("k{}", message.payload["n"].as_i64().unwrap() % 3);
                per_key.entry(key).or_default().push(message.id);
            }
            for (key, got) in &per_key {
                let want: Vec<_> = expected
                    .iter()
                    .enumerate()
                    .filter(|(n, _)| format!("k{}", n % 3) == *key)
                    .map(|(_, id)| *id)
                    .collect();
                assert_eq!(got, &want, "key {key} keeps the batch order");
            }
            let late = next(&mut received).await;
            assert_eq!(late.id, delayed);
            assert!(Utc::now() >= deliver_at, "delivered before its time");
        })
    })
    .await;
}

/// Three relays at once, concurrent writers over 10 keys: every row once (no
/// failure, so no duplicate at all), and in order per key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_relays_publish_every_row_once_in_order_per_key() {
    common::run(|f| {
        Box::pin(async move {
            const WRITERS: usize = 4;
            const PER_WRITER: usize = 500;
            let total = WRITERS * PER_WRITER;
            let mut received = f.subscribe("load.item").await;
            let relays: Vec<_> = (0..3)
                .map(|_| {
                    relay(
                        f,
                        RelayConfig::default()
                            .with_batch_size(50)
                            .with_poll_interval(Duration::from_millis(100)),
                    )
                    .spawn()
                })
                .collect();
            let mut writers = Vec::new();
            for w in 0..WRITERS {
                let (outbox, pool) = (f.outbox.clone(), f.pool.clone());
                writers.push(tokio::spawn(async move {
                    for chunk in 0..PER_WRITER / 10 {
                        let mut tx = pool.begin().await.unwrap();
                        for i in 0..10 {
                            let n = chunk * 10 + i;
                            // Key per writer and parity: each key has one writer,
                            // so its order is the writer's order.
                            let key = format!("w{w}-{}", n % 2);
                            outbox
                                .publish_ordered(
                                    &mut tx,
                                    "load.item",
                                    &key,
                                    json!({"key": key, "n": n}),
                                )
                                .await
                                .unwrap();
                        }
                        tx.commit().await.unwrap();
                    }
                }));
            }
            for writer in writers {
                writer.await.unwrap();
            }
            let mut deliveries: HashMap<uuid::Uuid, usize> = HashMap::new();
            let mut last: BTreeMap<String, i64> = BTreeMap::new();
            while deliveries.len() < total {
                let message = next(&mut received).await;
                *deliveries.entry(message.id).or_default() += 1;
                let key = message.payload["key"].as_str().unwrap().to_owned();
                let n = message.payload["n"].as_i64().unwrap();
                let previous = last.insert(key.clone(), n);
                assert!(
                    previous.is_none_or(|p| p < n),
                    "key {key}: {n} after {previous:?}"
                );
            }
            let mut stats = Vec::new();
            for relay in relays {
                stats.push(relay.stop().await);
            }
            let published: u64 = stats.iter().map(|s| s.published).sum();
            assert_eq!(published, total as u64, "{stats:?}");
            assert!(deliveries.values().all(|&count| count == 1));
            assert_eq!(
                f.scalar("SELECT count(*) FROM {table} WHERE attempts <> 1")
                    .await,
                0
            );
            println!("three relays: {stats:?}");
        })
    })
    .await;
}

/// With a poll interval of an hour, only the `NOTIFY` of the commit can wake
/// an idle relay in time.
#[tokio::test]
async fn a_commit_wakes_an_idle_relay() {
    common::run(|f| {
        Box::pin(async move {
            let mut received = f.subscribe("wake.up").await;
            let relay = relay(
                f,
                RelayConfig::default().with_poll_interval(Duration::from_secs(3600)),
            )
            .spawn();
            let claim_prefix = "WITH oldest AS MATERIALIZED";
            for n in 0..3 {
                // Idle: its lock connection's last statement is an empty claim
                // and nothing is pending.
                f.eventually("the relay to be idle", || async {
                    let idle = f
                        .scalar(&format!(
                            "SELECT count(*) FROM pg_stat_activity WHERE state = 'idle' \
                             AND query LIKE '{claim_prefix}%{}%'",
                            f.outbox.table()
                        ))
                        .await;
                    let pending = f
                        .scalar("SELECT count(*) FROM {table} WHERE state = 'pending'")
                        .await;
                    (idle == 1 && pending == 0).then_some(())
                })
                .await;
                let mut tx = f.pool.begin().await.unwrap();
                let id = f
                    .outbox
                    .publish(&mut tx, "wake.up", json!({"n": n}))
                    .await
                    .unwrap();
                tx.commit().await.unwrap();
                assert_eq!(next(&mut received).await.id, id);
            }
            relay.stop().await;
        })
    })
    .await;
}

#[tokio::test]
async fn without_notifications_the_poll_finds_the_rows() {
    common::run(|f| {
        Box::pin(async move {
            let mut received = f.subscribe("poll.me").await;
            let outbox = f.outbox.clone().with_notify(false);
            let relay = Relay::new(
                outbox.clone(),
                f.pool.clone(),
                f.service.clone(),
                RelayConfig::default()
                    .with_listen(false)
                    .with_poll_interval(Duration::from_millis(50)),
            )
            .unwrap()
            .spawn();
            let mut tx = f.pool.begin().await.unwrap();
            let id = outbox.publish(&mut tx, "poll.me", json!({})).await.unwrap();
            tx.commit().await.unwrap();
            assert_eq!(next(&mut received).await.id, id);
            let stats = relay.stop().await;
            assert_eq!(stats.published, 1);
        })
    })
    .await;
}

#[tokio::test]
async fn retention_keeps_published_rows_for_a_while_or_deletes_them_at_once() {
    common::run(|f| {
        Box::pin(async move {
            let mut tx = f.pool.begin().await.unwrap();
            for n in 0..5 {
                f.outbox
                    .publish(&mut tx, "kept.rows", json!({"n": n}))
                    .await
                    .unwrap();
            }
            tx.commit().await.unwrap();
            let mut relay = relay(f, RelayConfig::default());
            assert_eq!(relay.relay_once().await.unwrap().published, 5);
            assert_eq!(
                relay.sweep().await.unwrap(),
                0,
                "younger than the retention"
            );
            f.execute(
                "UPDATE {table} SET published_at = now() - interval '25 hours' \
                 WHERE seq IN (SELECT seq FROM {table} ORDER BY seq LIMIT 3)",
            )
            .await;
            assert_eq!(relay.sweep().await.unwrap(), 3);
            assert_eq!(f.scalar("SELECT count(*) FROM {table}").await, 2);

            let mut tx = f.pool.begin().await.unwrap();
            f.outbox
                .publish(&mut tx, "kept.rows", json!({}))
                .await
                .unwrap();
            tx.commit().await.unwrap();
            let mut deleting =
                self::relay(f, RelayConfig::default().with_retention(Duration::ZERO));
            assert_eq!(deleting.relay_once().await.unwrap().published, 1);
            assert_eq!(
                f.scalar("SELECT count(*) FROM {table}").await,
                2,
                "zero retention deletes on publish"
            );
        })
    })
    .await;
}

#[tokio::test]
async fn a_row_the_backend_can_never_take_is_marked_failed_and_the_key_goes_on() {
    common::run(|f| {
        Box::pin(async move {
            let mut received = f.subscribe("mixed.rows").await;
            let mut tx = f.pool.begin().await.unwrap();
            for n in 0..3 {
                f.outbox
                    .publish_ordered(&mut tx, "mixed.rows", "k", json!({"n": n}))
                    .await
                    .unwrap();
            }
            tx.commit().await.unwrap();
            // Edited by hand into something no publish accepts.
            f.execute("UPDATE {table} SET topic = 'bad topic' WHERE payload->>'n' = '1'")
                .await;
            let mut relay = relay(f, RelayConfig::default());
            let round = relay.relay_once().await.unwrap();
            assert_eq!((round.published, round.failed), (2, 1));
            assert_eq!(next(&mut received).await.payload["n"], 0);
            assert_eq!(next(&mut received).await.payload["n"], 2);
            assert_eq!(
                f.scalar(
                    "SELECT count(*) FROM {table} WHERE state = 'failed' AND error LIKE '%topic%'"
                )
                .await,
                1
            );
        })
    })
    .await;
}

#[tokio::test]
async fn values_the_database_refuses_are_invalid_input() {
    common::run(|f| {
        Box::pin(async move {
            let mut tx = f.pool.begin().await.unwrap();
            let message = OutboxMessage::new("a.b", json!({}))
                .unwrap()
                .with_metadata("k", "nul \0 byte")
                .unwrap();
            let error = f
                .outbox
                .publish_message(&mut tx, message)
                .await
                .unwrap_err();
            assert!(
                matches!(error, OutboxError::InvalidInput { .. }),
                "{error:?}"
            );
            tx.rollback().await.unwrap();
        })
    })
    .await;
}
