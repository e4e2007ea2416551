//! `messaging inbox USER [--unread] [--limit N] [--json]`.

use std::io::Write;

use messaging_model::Notification;
use notification::store::{InboxQuery, NotificationStore};
use serde::Serialize;

use crate::cli::InboxArgs;
use crate::exit::CliError;

/// What `--json` prints.
#[derive(Debug, Serialize)]
struct Inbox {
    user_id: String,
    unread: u64,
    notifications: Vec<Notification>,
}

/// Lists a user's notifications, newest first, with the unread count.
pub(crate) async fn run(args: InboxArgs) -> anyhow::Result<()> {
    let Some(url) = args.database.database_url.as_deref() else {
        return Err(CliError::InvalidSetting {
            name: "--database-url".into(),
            reason: "inbox reads PostgreSQL: pass --database-url URL or set DATABASE_URL".into(),
        }
        .into());
    };
    let mut query = InboxQuery::default().with_limit(args.limit);
    if args.unread {
        query = query.unread_only();
    }
    query.check()?;
    let store =
        crate::pipeline::connect_postgres(url, args.database.db_schema.as_deref(), Some(2)).await?;
    let outcome = list(&store, &args.user, &query).await;
    store.close().await;
    let inbox = outcome?;
    let mut out = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer_pretty(&mut out, &inbox)?;
        writeln!(out)?;
    } else {
        write_table(&inbox, &mut out)?;
    }
    Ok(())
}

async fn list(
    store: &dyn NotificationStore,
    user: &str,
    query: &InboxQuery,
) -> anyhow::Result<Inbox> {
    let page = store.list_for_user(user, query).await?;
    let unread = store.unread_count(user).await?;
    Ok(Inbox {
        user_id: user.to_owned(),
        unread,
        notifications: page.items,
    })
}

fn write_table(inbox: &Inbox, out: &mut impl Write) -> std::io::Result<()> {
    writeln!(
        out,
        "{}: {} notifications shown, {} unread",
        inbox.user_id,
        inbox.notifications.len(),
        inbox.unread
    )?;
    if inbox.notifications.is_empty() {
        return Ok(());
    }
    let mut rows = vec![[
        "CREATED".to_owned(),
        "KIND".to_owned(),
        "STATUS".to_owned(),
        "READ".to_owned(),
        "TITLE".to_owned(),
    ]];
    for notification in &inbox.notifications {
        rows.push([
            notification
                .created_at
                .format("%Y-%m-%d %H:%M:%S")
                .to_string(),
            notification.kind.as_str().to_owned(),
            notification.status.as_str().to_owned(),
            if notification.is_read { "yes" } else { "no" }.to_owned(),
            notification.title.replace('\n', " "),
        ]);
    }
    crate::commands::stats::write_aligned(&rows, out)
}

#[cfg(test)]
mod tests {
    use messaging_model::NotificationKind;
    use notification::store::InMemoryNotificationStore;

    use super::*;

    #[tokio::test]
    async fn lists_newest_first_with_the_unread_count() {
        let store = InMemoryNotificationStore::new();
        store
            .record(&Notification::new(
                "u-1",
                NotificationKind::System,
                "First",
                "a",
            ))
            .await
            .unwrap();
        let second = Notification::new("u-1", NotificationKind::Email, "Second", "b");
        store.record(&second).await.unwrap();
        store.mark_read("u-1", second.id).await.unwrap();
        store
            .record(&Notification::new(
                "u-2",
                NotificationKind::System,
                "Other user",
                "c",
            ))
            .await
            .unwrap();

        let inbox = list(&store, "u-1", &InboxQuery::default()).await.unwrap();
        assert_eq!(inbox.unread, 1);
        let titles: Vec<&str> = inbox
            .notifications
            .iter()
            .map(|n| n.title.as_str())
            .collect();
        assert_eq!(titles, ["Second", "First"]);

        let mut table = Vec::new();
        write_table(&inbox, &mut table).unwrap();
        let table = String::from_utf8(table).unwrap();
        assert!(
            table.starts_with("u-1: 2 notifications shown, 1 unread"),
            "{table}"
        );
        assert!(table.contains("email   pending  yes   Second"), "{table}");
    }
}
