//! PostgreSQL specifics beyond the conformance suite: schemas, migrations, errors.
//!
//! ```text
//! DATABASE_URL=postgres://postgres@127.0.0.1:5432/test cargo test -p notification-store-postgres --test postgres
//! ```

mod common;

use std::time::Duration;

use messaging_model::{MessageTemplate, Notification, NotificationKind, TemplateKind};
use notification_store::{InboxQuery, NotificationStore, StoreError, TemplateStore};
use notification_store_postgres::{PostgresStore, PostgresStoreConfig, PostgresStoreError};
use sqlx::AssertSqlSafe;

use common::{config, database_url, drop_schema, fresh_schema, store, teardown};

/// Runs `body` against a fresh store, then drops its schema even if `body` panics.
async fn with_store<F, Fut>(body: F)
where
    F: FnOnce(PostgresStore) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let store = store().await;
    let outcome = tokio::spawn(body(store.clone())).await;
    teardown(&store).await;
    if let Err(error) = outcome {
        std::panic::resume_unwind(error.into_panic());
    }
}

#[tokio::test]
async fn migrate_creates_the_schema_and_is_idempotent() {
    with_store(|store| async move {
        store.migrate().await.expect("second migrate is a no-op");
        let applied: i64 = sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations WHERE success")
            .fetch_one(store.pool())
            .await
            .unwrap();
        assert_eq!(applied, notification_store_postgres::MIGRATOR.iter().count() as i64);
        let schema = store.schema().unwrap().to_owned();
        let tables: Vec<String> = sqlx::query_scalar(
            "SELECT table_name::text FROM information_schema.tables WHERE table_schema = $1 ORDER BY 1",
        )
        .bind(&schema)
        .fetch_all(store.pool())
        .await
        .unwrap();
        assert_eq!(
            tables,
            [
                "_sqlx_migrations",
                "message_templates",
                "notification_attempts",
                "notification_digest_events",
                "notification_digest_windows",
                "notification_preferences",
                "notifications",
                "suppression_soft_bounces",
                "suppressions"
            ]
        );
    })
    .await;
}

#[tokio::test]
async fn concurrent_migrations_of_one_schema_all_succeed() {
    let schema = fresh_schema();
    let stores: Vec<PostgresStore> = {
        let mut stores = Vec::new();
        for _ in 0..3 {
            stores.push(PostgresStore::connect(config(&schema)).await.unwrap());
        }
        stores
    };
    let tasks: Vec<_> = stores
        .iter()
        .cloned()
        .map(|s| tokio::spawn(async move { s.migrate().await }))
        .collect();
    let mut results = Vec::new();
    for task in tasks {
        results.push(task.await.unwrap());
    }
    for store in &stores {
        store.close().await;
    }
    drop_schema(&schema).await;
    for result in results {
        result.expect("every concurrent migrate succeeds");
    }
}

#[tokio::test]
async fn failed_migration_releases_the_migration_lock() {
    // A schema where the first migration cannot run: its table already exists.
    let broken = fresh_schema();
    let store = PostgresStore::connect(config(&broken)).await.unwrap();
    sqlx::raw_sql(AssertSqlSafe(format!(
        "CREATE SCHEMA {broken}; CREATE TABLE {broken}.notifications (x int);"
    )))
    .execute(store.pool())
    .await
    .unwrap();
    let failed = store.migrate().await;
    store.close().await;
    drop_schema(&broken).await;
    assert!(
        matches!(failed, Err(PostgresStoreError::Migrate { .. })),
        "{failed:?}"
    );

    // The lock is database-wide: a leaked one would block this migrate forever.
    let next = tokio::time::timeout(Duration::from_secs(60), store_then_teardown()).await;
    assert!(
        next.is_ok(),
        "migrate after a failed one did not finish: the lock leaked"
    );
}

async fn store_then_teardown() {
    let store = store().await;
    teardown(&store).await;
}

#[tokio::test]
async fn stores_in_different_schemas_do_not_see_each_other() {
    let first = store().await;
    let second = store().await;
    let n = Notification::new("user-1", NotificationKind::System, "Hi", "There");
    let recorded = first.record(&n).await;
    let seen_by_second = NotificationStore::get_notification(&second, "user-1", n.id).await;
    let count_second = second.unread_count("user-1").await;
    teardown(&first).await;
    teardown(&second).await;
    recorded.unwrap();
    assert!(seen_by_second.unwrap_err().is_not_found());
    assert_eq!(count_second.unwrap(), 0);
}

#[tokio::test]
async fn text_the_database_refuses_is_invalid_input() {
    with_store(|store| async move {
        let n = Notification::new("user-1", NotificationKind::System, "nul \0 byte", "body");
        let error = store.record(&n).await.unwrap_err();
        assert!(
            matches!(error, StoreError::InvalidInput { .. }),
            "{error:?}"
        );

        let batch = vec![Notification::new(
            "user-1",
            NotificationKind::Sms,
            "ok",
            "nul \0",
        )];
        let error = store.record_batch(&batch).await.unwrap_err();
        assert!(
            matches!(error, StoreError::InvalidInput { .. }),
            "{error:?}"
        );

        let empty_locale = MessageTemplate::new("t", TemplateKind::Sms, "x").with_locale("");
        let error = store.save(&empty_locale).await.unwrap_err();
        assert!(
            matches!(error, StoreError::InvalidInput { .. }),
            "{error:?}"
        );
    })
    .await;
}

#[tokio::test]
async fn conflict_names_the_constraint() {
    with_store(|store| async move {
        let n = Notification::new("user-1", NotificationKind::Email, "a", "b")
            .with_idempotency_key("k");
        store.record(&n).await.unwrap();
        let again = Notification::new("user-1", NotificationKind::Email, "a", "b")
            .with_idempotency_key("k");
        match store.record(&again).await {
            Err(StoreError::Conflict { what }) => {
                assert!(what.contains("notifications_idempotency_key_idx"), "{what}")
            }
            other => panic!("expected a conflict, got {other:?}"),
        }
    })
    .await;
}

#[tokio::test]
async fn check_constraints_refuse_unknown_enum_values() {
    with_store(|store| async move {
        let inserted = sqlx::query(
            "INSERT INTO notifications (id, user_id, kind, title, content) VALUES ($1, 'u', 'fax', 't', 'c')",
        )
        .bind(uuid::Uuid::now_v7())
        .execute(store.pool())
        .await;
        let error = inserted.unwrap_err();
        assert_eq!(
            error.as_database_error().and_then(|e| e.constraint()),
            Some("notifications_kind_check")
        );
    })
    .await;
}

#[tokio::test]
async fn the_inbox_page_query_uses_the_inbox_index() {
    with_store(|store| async move {
        let plan: Vec<String> = sqlx::query_scalar(
            "EXPLAIN SELECT id FROM notifications WHERE user_id = 'u' \
             AND (created_at, id) < (now(), 'ffffffff-ffff-ffff-ffff-ffffffffffff'::uuid) \
             ORDER BY created_at DESC, id DESC LIMIT 21",
        )
        .fetch_all(store.pool())
        .await
        .unwrap();
        let plan = plan.join("\n");
        assert!(plan.contains("notifications_inbox_idx"), "{plan}");
    })
    .await;
}

#[tokio::test]
async fn unreachable_server_is_unavailable() {
    // Port 1 on loopback: nothing listens there.
    let config = PostgresStoreConfig::new("postgres://postgres@127.0.0.1:1/test")
        .with_acquire_timeout(Duration::from_secs(2));
    let connected = PostgresStore::connect(config.clone()).await;
    assert!(
        matches!(connected, Err(PostgresStoreError::Connect { .. })),
        "{connected:?}"
    );

    let lazy = PostgresStore::connect_lazy(config).expect("nothing is checked yet");
    let error = lazy.unread_count("user-1").await.unwrap_err();
    assert!(error.is_transient(), "{error:?}");
    let error = lazy
        .list_for_user("user-1", &InboxQuery::default())
        .await
        .unwrap_err();
    assert!(matches!(error, StoreError::Unavailable { .. }), "{error:?}");
}

#[tokio::test]
async fn closed_store_is_unavailable() {
    let store = store().await;
    store.close().await;
    let error = store.unread_count("user-1").await.unwrap_err();
    drop_schema(store.schema().unwrap()).await;
    assert!(error.is_transient(), "{error:?}");
}

#[tokio::test]
async fn bad_configuration_is_reported_before_connecting() {
    for url in ["mysql://nope", "postgres://host:notaport/db", ""] {
        let error = PostgresStore::connect(PostgresStoreConfig::new(url)).await;
        assert!(
            matches!(error, Err(PostgresStoreError::InvalidUrl { .. })),
            "{url}: {error:?}"
        );
    }

    let error =
        PostgresStore::connect(PostgresStoreConfig::new(database_url()).with_schema("x; DROP"))
            .await;
    assert!(
        matches!(error, Err(PostgresStoreError::InvalidSchemaName { .. })),
        "{error:?}"
    );
}

#[tokio::test]
async fn the_pool_keeps_the_schema_on_every_connection() {
    with_store(|store| async move {
        let schema = store.schema().unwrap().to_owned();
        // More concurrent queries than one connection: several connections open.
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let pool = store.pool().clone();
                tokio::spawn(async move {
                    let mut tx = pool.begin().await.unwrap();
                    let path: String = sqlx::query_scalar("SELECT current_schema()::text")
                        .fetch_one(&mut *tx)
                        .await
                        .unwrap();
                    tx.commit().await.unwrap();
                    path
                })
            })
            .collect();
        for task in tasks {
            assert_eq!(task.await.unwrap(), schema);
        }
    })
    .await;
}

/// JSON nested `depth` arrays deep.
fn nested(depth: usize) -> serde_json::Value {
    let mut value = serde_json::json!(1);
    for _ in 0..depth {
        value = serde_json::json!([value]);
    }
    value
}

#[tokio::test]
async fn a_row_with_metadata_too_deep_to_read_does_not_break_the_inbox() {
    with_store(|store| async move {
        let user = format!("deep-{}", uuid::Uuid::now_v7().simple());
        let fine = Notification::new(&user, NotificationKind::System, "Fine", "a");
        store.record(&fine).await.unwrap();
        // Written around the store's check (an older version, a hand-made fix):
        // PostgreSQL keeps 200 levels; serde_json reads 128 at most.
        let deep = Notification::new(&user, NotificationKind::System, "Deep", "b");
        sqlx::query(
            "INSERT INTO notifications (id, user_id, kind, title, content, metadata) \
             VALUES ($1, $2, 'system', 'Deep', 'b', $3::text::jsonb)",
        )
        .bind(deep.id)
        .bind(&user)
        .bind(nested(200).to_string())
        .execute(store.pool())
        .await
        .unwrap();

        let page = store
            .list_for_user(&user, &InboxQuery::default())
            .await
            .expect("the inbox is read despite the deep row");
        let titles: Vec<&str> = page.items.iter().map(|n| n.title.as_str()).collect();
        assert_eq!(titles.len(), 2, "{titles:?}");
        let shown = page.items.iter().find(|n| n.id == deep.id).unwrap();
        assert_eq!(shown.metadata, serde_json::Value::Null);
        let got = store.get_notification(&user, deep.id).await.unwrap();
        assert_eq!(got.title, "Deep");
        assert_eq!(store.unread_count(&user).await.unwrap(), 2);

        // Through the store, such metadata is refused before it is written.
        let refused = Notification::new(&user, NotificationKind::System, "No", "c")
            .with_metadata(serde_json::json!({"a": nested(200)}));
        assert!(matches!(
            store.record(&refused).await,
            Err(StoreError::InvalidInput { .. })
        ));
        assert!(matches!(
            store.record_batch(std::slice::from_ref(&refused)).await,
            Err(StoreError::InvalidInput { .. })
        ));
        assert_eq!(store.unread_count(&user).await.unwrap(), 2);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_sends_are_committed_together_with_every_answer_exact() {
    use messaging_model::{AttemptOutcome, DeliveryAttempt, NotificationStatus};
    with_store(|store| async move {
        let user = format!("gc-{}", uuid::Uuid::now_v7().simple());
        let store = std::sync::Arc::new(store);
        // 200 sends of their own, each: record, begin, sent.
        let sends = (0..200).map(|i| {
            let store = store.clone();
            let user = user.clone();
            tokio::spawn(async move {
                let n = Notification::new(&user, NotificationKind::Email, format!("n{i}"), "x")
                    .with_idempotency_key(format!("k{i}"));
                store.record(&n).await.expect("record");
                let sending = store
                    .begin_attempt(n.id, 0, chrono::Utc::now())
                    .await
                    .expect("begin");
                assert_eq!(
                    (sending.status, sending.attempts),
                    (NotificationStatus::Sending, 1)
                );
                let sent = store
                    .record_attempt(&DeliveryAttempt::new(
                        &sending,
                        1,
                        "smtp",
                        AttemptOutcome::Sent,
                    ))
                    .await
                    .expect("sent");
                assert_eq!(sent.status, NotificationStatus::Sent);
            })
        });
        // 20 keys recorded twice at once: one record wins each, the other is a Conflict.
        let races = (0..20).map(|i| {
            let store = store.clone();
            let user = user.clone();
            tokio::spawn(async move {
                let a = Notification::new(&user, NotificationKind::Email, "a", "x")
                    .with_idempotency_key(format!("race{i}"));
                let b = Notification::new(&user, NotificationKind::Email, "b", "x")
                    .with_idempotency_key(format!("race{i}"));
                let (ra, rb) = tokio::join!(store.record(&a), store.record(&b));
                assert!(ra.is_ok() != rb.is_ok(), "exactly one wins: {ra:?} {rb:?}");
                let lost = ra.err().or(rb.err()).unwrap();
                assert!(lost.is_conflict(), "{lost:?}");
            })
        });
        // A value PostgreSQL refuses (a NUL byte) fails alone, with its own error.
        let bad = {
            let store = store.clone();
            let user = user.clone();
            tokio::spawn(async move {
                let n = Notification::new(&user, NotificationKind::Email, "nul\0byte", "x");
                assert!(matches!(
                    store.record(&n).await,
                    Err(StoreError::InvalidInput { .. })
                ));
            })
        };
        for task in sends.chain(races).chain(std::iter::once(bad)) {
            task.await.expect("no assertion failed");
        }
        // One row has several begin_attempt racers at once: one moves it, the rest lose.
        let n = Notification::new(&user, NotificationKind::Email, "cas", "x");
        store.record(&n).await.unwrap();
        let racers: Vec<_> = (0..10)
            .map(|_| {
                let store = store.clone();
                tokio::spawn(async move { store.begin_attempt(n.id, 0, chrono::Utc::now()).await })
            })
            .collect();
        let mut won = 0;
        for racer in racers {
            match racer.await.unwrap() {
                Ok(row) => {
                    won += 1;
                    assert_eq!(row.attempts, 1);
                }
                Err(error) => assert!(error.is_conflict(), "{error:?}"),
            }
        }
        assert_eq!(won, 1, "one compare-and-set wins");
        assert_eq!(store.unread_count(&user).await.unwrap(), 200 + 20 + 1);

        let stats = store
            .group_commit_stats()
            .expect("group commit is on by default");
        assert!(
            stats.batches < stats.writes,
            "concurrent writes shared commits: {stats:?}"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_writes_of_one_notification_at_once_are_both_answered() {
    // The second write of a notification waits for the next batch; while the
    // other writer waited for new writes holding the queue, that batch once
    // never came (the two senders waited for ever).
    with_store(|store| async move {
        let user = format!("carry-{}", uuid::Uuid::now_v7().simple());
        for round in 0..20 {
            let n = Notification::new(&user, NotificationKind::Email, format!("r{round}"), "x");
            store.record(&n).await.unwrap();
            let racers = futures_join(
                store.begin_attempt(n.id, 0, chrono::Utc::now()),
                store.begin_attempt(n.id, 0, chrono::Utc::now()),
            );
            let (a, b) = tokio::time::timeout(Duration::from_secs(30), racers)
                .await
                .expect("both writes are answered");
            assert!(a.is_ok() != b.is_ok(), "one wins: {a:?} {b:?}");
        }
    })
    .await;
}

async fn futures_join<A: Future, B: Future>(a: A, b: B) -> (A::Output, B::Output) {
    tokio::join!(a, b)
}

#[tokio::test]
async fn the_inbox_listener_hears_notifications_of_its_own_schema_only() {
    let other = store().await;
    let elsewhere_store = other.clone();
    let outcome = tokio::spawn(with_store(move |store| async move {
        let other = elsewhere_store;
        let mut listener = store.inbox_listener().await.unwrap();
        assert!(
            listener.channel().starts_with("inbox_t_"),
            "{}",
            listener.channel()
        );
        // Recorded in another schema first: if the channels crossed, the
        // listener would hear this one before its own.
        let elsewhere = Notification::new("u-1", NotificationKind::System, "Other", "x");
        other.record(&elsewhere).await.unwrap();
        let batch = [
            Notification::new("u-1", NotificationKind::System, "One", "x"),
            Notification::new("u-2", NotificationKind::Email, "Two", "y"),
        ];
        store.record_batch(&batch).await.unwrap();
        let mut heard = Vec::new();
        for _ in 0..2 {
            let change = tokio::time::timeout(Duration::from_secs(30), listener.recv())
                .await
                .expect("the listener hears the batch")
                .unwrap();
            heard.push(change);
        }
        // Each announcement carries the notification as the store reads it.
        let mut expected = Vec::new();
        for n in &batch {
            let stored = store.get_notification(&n.user_id, n.id).await.unwrap();
            expected.push(notification_store_postgres::InboxChange::Recorded {
                user_id: n.user_id.clone(),
                id: n.id,
                notification: Some(Box::new(stored)),
            });
        }
        assert_eq!(heard, expected);
    }));
    let outcome = outcome.await;
    teardown(&other).await;
    if let Err(error) = outcome {
        std::panic::resume_unwind(error.into_panic());
    }
}

/// An announcement carries the notification whole (metadata nested deeper
/// than the JSON reader allows shown as null, as a read shows it), and a row
/// too big for NOTIFY is announced by its id alone; the reader reads it, and
/// the unread counts come in the order asked, 0 for a user with none.
#[tokio::test]
async fn announcements_carry_rows_that_fit_and_name_the_others() {
    with_store(|store| async move {
        let mut listener = store.inbox_listener().await.unwrap();
        let mut small = Notification::new("u-1", NotificationKind::Email, "Grüße 🎉", "line\nbreak \"quoted\"");
        small.metadata = serde_json::json!({"order": {"id": 42, "lines": [1, 2.5, null]}, "tag": "é"});
        small.idempotency_key = Some("key-1".into());
        let big = Notification::new("u-2", NotificationKind::System, "Big", "x".repeat(9_000));
        store.record_batch(&[small.clone(), big.clone()]).await.unwrap();
        // Metadata 200 levels deep, written by hand (the store refuses it).
        let deep = Notification::new("u-1", NotificationKind::System, "Deep", "y");
        store.record(&deep).await.unwrap();
        let nested = format!("{}1{}", "[".repeat(200), "]".repeat(200));
        let pool = sqlx::PgPool::connect(&database_url()).await.unwrap();
        sqlx::query(AssertSqlSafe(format!(
            "UPDATE \"{}\".notifications SET metadata = '{nested}'::jsonb WHERE id = $1",
            store.schema().expect("a test schema")
        )))
        .bind(deep.id)
        .execute(&pool)
        .await
        .unwrap();
        let deep_again = Notification::new("u-1", NotificationKind::System, "Deep again", "z");
        sqlx::query(AssertSqlSafe(format!(
            "INSERT INTO \"{}\".notifications (id, user_id, kind, title, content, status, is_read, metadata, created_at, attempts) \
             VALUES ($1, 'u-1', 'system', 'Deep again', 'z', 'pending', false, '{nested}'::jsonb, now(), 0)",
            store.schema().expect("a test schema")
        )))
        .bind(deep_again.id)
        .execute(&pool)
        .await
        .unwrap();
        pool.close().await;

        let mut heard = Vec::new();
        for _ in 0..4 {
            heard.push(
                tokio::time::timeout(Duration::from_secs(30), listener.recv())
                    .await
                    .expect("the listener hears every row")
                    .unwrap(),
            );
        }
        let carried = |change: &notification_store_postgres::InboxChange| match change {
            notification_store_postgres::InboxChange::Recorded { notification, id, .. } => {
                (*id, notification.as_deref().cloned())
            }
            other => panic!("{other:?}"),
        };
        let (id, notification) = carried(&heard[0]);
        assert_eq!(id, small.id);
        let stored = store.get_notification("u-1", small.id).await.unwrap();
        assert_eq!(notification.as_ref(), Some(&stored), "the small row is carried whole");
        assert_eq!(stored.metadata, small.metadata);
        assert_eq!(carried(&heard[1]), (big.id, None), "a row over 7,900 bytes is named");
        assert_eq!(carried(&heard[2]).0, deep.id);
        let (id, notification) = carried(&heard[3]);
        assert_eq!(id, deep_again.id);
        let notification = notification.expect("a row with deep metadata is still carried");
        assert_eq!(notification.metadata, serde_json::Value::Null, "shown as null, as a read shows it");
        assert_eq!(
            Some(notification),
            Some(store.get_notification("u-1", deep_again.id).await.unwrap())
        );

        let reader = listener.reader();
        let read = reader.recorded(&[big.id]).await.unwrap();
        assert_eq!(read.len(), 1);
        assert_eq!(read[0].notification.content.len(), 9_000);
        let counts = reader
            .unread_counts(&["u-2".into(), "nobody".into(), "u-1".into()])
            .await
            .unwrap();
        assert_eq!(
            counts,
            vec![("u-2".into(), 1), ("nobody".into(), 0), ("u-1".into(), 3)]
        );
    })
    .await;
}
