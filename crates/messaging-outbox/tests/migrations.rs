//! The outbox's migrations: idempotent, safe to run concurrently, and able to
//! share a schema with the notification store's migration set (each records
//! itself in its own table: `_outbox_migrations` beside `_sqlx_migrations`).
//!
//! ```text
//! DATABASE_URL=postgres://postgres@127.0.0.1:5432/test cargo test -p messaging-outbox --test migrations
//! ```

mod common;

use std::path::Path;

use common::{database_url, drop_schema};
use messaging_outbox::{MIGRATIONS_TABLE, MIGRATOR, Outbox};
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgPool, PgPoolOptions};

fn fresh_schema() -> String {
    format!(
        "t_outbox_m_{}",
        &uuid::Uuid::now_v7().simple().to_string()[..20]
    )
}

/// A pool whose connections work in `schema` (as the notification store's do).
async fn pool_in(schema: &str) -> PgPool {
    let options: sqlx::postgres::PgConnectOptions = database_url().parse().unwrap();
    PgPoolOptions::new()
        .max_connections(2)
        .connect_with(options.options([("search_path", schema)]))
        .await
        .expect("connect to DATABASE_URL")
}

/// The notification store's migration set, read from the workspace's
/// `migrations/` as `sqlx migrate run` reads it.
async fn notification_store_migrator() -> Migrator {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../migrations");
    Migrator::new(dir).await.expect("read migrations/")
}

async fn count(pool: &PgPool, sql: &str) -> i64 {
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_owned()))
        .fetch_one(pool)
        .await
        .expect("the query runs")
}

#[tokio::test]
async fn migrate_is_idempotent_and_concurrent_runs_all_succeed() {
    let schema = fresh_schema();
    let outbox = Outbox::in_schema(&schema).unwrap();
    let pool = pool_in("public").await;
    let runs: Vec<_> = (0..3)
        .map(|_| {
            let (pool, outbox) = (pool.clone(), outbox.clone());
            tokio::spawn(async move { messaging_outbox::migrate(&pool, &outbox).await })
        })
        .collect();
    let mut outcomes = Vec::new();
    for run in runs {
        outcomes.push(run.await.unwrap());
    }
    let again = messaging_outbox::migrate(&pool, &outbox).await;
    let applied = count(
        &pool,
        &format!("SELECT count(*) FROM {schema}.{MIGRATIONS_TABLE} WHERE success"),
    )
    .await;
    pool.close().await;
    drop_schema(&schema).await;
    for outcome in outcomes {
        outcome.expect("every concurrent migrate succeeds");
    }
    again.expect("a second migrate has nothing to do");
    assert_eq!(applied, MIGRATOR.iter().count() as i64);
}

#[tokio::test]
async fn the_outbox_shares_a_schema_with_the_notification_store_in_either_order() {
    for store_first in [true, false] {
        let schema = fresh_schema();
        let pool = pool_in(&schema).await;
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
            .execute(&pool)
            .await
            .unwrap();
        let outbox = Outbox::in_schema(&schema).unwrap();
        let store = notification_store_migrator().await;
        let (first, second, store_again, outbox_again) = if store_first {
            let a = store.run(&pool).await.map_err(|e| e.to_string());
            let b = messaging_outbox::migrate(&pool, &outbox)
                .await
                .map_err(|e| e.to_string());
            (
                a,
                b,
                store.run(&pool).await,
                messaging_outbox::migrate(&pool, &outbox).await,
            )
        } else {
            let b = messaging_outbox::migrate(&pool, &outbox)
                .await
                .map_err(|e| e.to_string());
            let a = store.run(&pool).await.map_err(|e| e.to_string());
            (
                b,
                a,
                store.run(&pool).await,
                messaging_outbox::migrate(&pool, &outbox).await,
            )
        };
        let tables: Vec<String> = sqlx::query_scalar(
            "SELECT table_name::text FROM information_schema.tables WHERE table_schema = $1 ORDER BY 1",
        )
        .bind(&schema)
        .fetch_all(&pool)
        .await
        .unwrap();
        pool.close().await;
        drop_schema(&schema).await;
        first.expect("the first set applies");
        second.expect("the second set applies beside it");
        store_again.expect("the store's migrator does not trip over the outbox's versions");
        outbox_again.expect("the outbox's migrator does not trip over the store's versions");
        for table in [
            "_outbox_migrations",
            "_sqlx_migrations",
            "notifications",
            "outbox_messages",
        ] {
            assert!(
                tables.iter().any(|t| t == table),
                "{table} missing: {tables:?}"
            );
        }
    }
}

#[tokio::test]
async fn the_default_outbox_lives_in_the_search_path() {
    let schema = fresh_schema();
    let pool = pool_in(&schema).await;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
        .execute(&pool)
        .await
        .unwrap();
    let outbox = Outbox::new();
    let migrated = messaging_outbox::migrate(&pool, &outbox).await;
    let mut tx = pool.begin().await.unwrap();
    let published = outbox
        .publish(&mut tx, "a.b", serde_json::json!({}))
        .await
        .map(drop);
    tx.commit().await.unwrap();
    let rows = count(
        &pool,
        &format!("SELECT count(*) FROM {schema}.outbox_messages"),
    )
    .await;
    pool.close().await;
    drop_schema(&schema).await;
    migrated.unwrap();
    published.unwrap();
    assert_eq!(rows, 1);
}
