//! A store in a schema of its own per test, dropped at the end.

#![allow(dead_code, unreachable_pub)]

use notification_store_postgres::{PostgresStore, PostgresStoreConfig};
use sqlx::{AssertSqlSafe, Connection, PgConnection};

/// The server under test: `DATABASE_URL`, else a container when a Docker
/// engine answers, else a failure with a hint (`messaging-test-support`).
pub use messaging_test_support::database_url;

/// A schema name no other test uses.
pub fn fresh_schema() -> String {
    format!("t_{}", uuid::Uuid::now_v7().simple())
}

/// A config for `schema` on the server under test.
pub fn config(schema: &str) -> PostgresStoreConfig {
    PostgresStoreConfig::new(database_url())
        .with_schema(schema)
        .with_max_connections(4)
        .with_application_name("notification-store-postgres-tests")
}

/// A migrated, empty store in a fresh schema.
pub async fn store() -> PostgresStore {
    store_with(|config| config).await
}

/// [`store`] with one commit per write (no group commit).
pub async fn store_without_group_commit() -> PostgresStore {
    store_with(|config| config.with_group_commit(None)).await
}

/// [`store`] with `adjust` applied to its config.
pub async fn store_with(
    adjust: impl FnOnce(PostgresStoreConfig) -> PostgresStoreConfig,
) -> PostgresStore {
    let schema = fresh_schema();
    let store = PostgresStore::connect(adjust(config(&schema)))
        .await
        .unwrap_or_else(|error| panic!("cannot connect to DATABASE_URL: {error}"));
    store.migrate().await.expect("migrate");
    store
}

/// Closes the store's pool and drops its schema.
pub async fn teardown(store: &PostgresStore) {
    store.close().await;
    let schema = store
        .schema()
        .expect("test stores have a schema")
        .to_owned();
    drop_schema(&schema).await;
}

/// Drops `schema` and everything in it, over a connection of its own.
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
