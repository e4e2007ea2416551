//! The embedded migrations (the crate's own `migrations/`, so the published
//! crate carries them) are the files `sqlx migrate run --source migrations`
//! applies from the workspace's top-level copy, and the two ways of migrating
//! can be mixed.
//!
//! ```text
//! DATABASE_URL=postgres://postgres@127.0.0.1:5432/test cargo test -p notification-store-postgres --test migrations
//! ```

mod common;

use std::path::Path;

use notification_store_postgres::{MIGRATOR, PostgresStore};
use sqlx::migrate::Migrator;

use common::{config, drop_schema, fresh_schema};

/// The workspace's top-level `migrations/` (the copy a user runs with
/// `sqlx migrate run`), read at run time the way `sqlx-cli` reads it. The test
/// below fails when it drifts from the crate's own folder.
async fn migrator_from_files() -> Migrator {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../migrations");
    Migrator::new(dir).await.expect("read migrations/")
}

#[tokio::test]
async fn embedded_migrations_match_the_files_sqlx_cli_reads() {
    let from_files = migrator_from_files().await;
    let summary = |m: &Migrator| {
        m.iter()
            .map(|m| (m.version, m.description.to_string(), m.checksum.to_vec()))
            .collect::<Vec<_>>()
    };
    assert_eq!(summary(&MIGRATOR), summary(&from_files));
    assert!(MIGRATOR.iter().count() >= 2);
}

#[tokio::test]
async fn migrate_after_the_files_were_applied_externally_has_nothing_to_do() {
    let schema = fresh_schema();
    let store = PostgresStore::connect(config(&schema)).await.unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
        .execute(store.pool())
        .await
        .unwrap();
    // What `sqlx migrate run --source migrations` does, over the same search_path.
    let external = migrator_from_files().await.run(store.pool()).await;
    let ours = store.migrate().await;
    let applied: Result<i64, _> = sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations")
        .fetch_one(store.pool())
        .await;
    store.close().await;
    drop_schema(&schema).await;
    external.expect("file migrations apply");
    ours.expect("migrate() accepts what the files applied (same checksums)");
    assert_eq!(applied.unwrap(), MIGRATOR.iter().count() as i64);
}
