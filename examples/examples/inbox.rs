//! A user's inbox in PostgreSQL: newest first, keyset pages, unread count,
//! mark read.
//!
//! ```sh
//! DATABASE_URL=postgres://postgres@127.0.0.1:5432/test cargo run -p messaging-examples --example inbox
//! ```
//!
//! The tables go into a schema of their own, dropped at the end.

use messaging_model::{Notification, NotificationKind};
use notification_store::{InboxQuery, NotificationStore};
use notification_store_postgres::{PostgresStore, PostgresStoreConfig};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let schema = format!("example_{}", uuid::Uuid::now_v7().simple());
    let store = PostgresStore::connect(PostgresStoreConfig::new(&url).with_schema(&schema)).await?;
    store.migrate().await?;

    let outcome = inbox(&store).await;

    sqlx_drop_schema(&store, &schema).await;
    store.close().await;
    outcome
}

async fn inbox(store: &PostgresStore) -> Result<(), Box<dyn std::error::Error>> {
    for n in 1..=5 {
        let notification = Notification::new(
            "u-1",
            NotificationKind::System,
            format!("Your order {n} shipped"),
            "It is on its way.",
        );
        store.record(&notification).await?;
    }
    println!("u-1 has {} unread", store.unread_count("u-1").await?);

    // Newest first, two per page, following the cursor.
    let mut query = InboxQuery::default().with_limit(2);
    let mut page_number = 1;
    loop {
        let page = store.list_for_user("u-1", &query).await?;
        let titles: Vec<_> = page.items.iter().map(|n| n.title.as_str()).collect();
        println!("page {page_number}: {titles:?}");
        if let Some(first) = page.items.first() {
            store.mark_read("u-1", first.id).await?;
        }
        match page.next_cursor {
            Some(cursor) => query = query.with_cursor(cursor),
            None => break,
        }
        page_number += 1;
    }
    let unread = store.unread_count("u-1").await?;
    println!("after reading the first of each page: {unread} unread");
    assert_eq!(unread, 2);
    // Another user's inbox is empty: every call names its user.
    assert!(
        store
            .list_for_user("u-2", &InboxQuery::default())
            .await?
            .items
            .is_empty()
    );
    Ok(())
}

async fn sqlx_drop_schema(store: &PostgresStore, schema: &str) {
    let drop = format!("DROP SCHEMA IF EXISTS {schema} CASCADE");
    if let Err(error) = sqlx::raw_sql(sqlx::AssertSqlSafe(drop))
        .execute(store.pool())
        .await
    {
        eprintln!("could not drop {schema}: {error}");
    }
}
