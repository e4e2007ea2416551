//! `messaging inbox USER [--unread] [--limit N] [--attempts] [--json]`.

use std::io::Write;

use messaging_model::{DeliveryAttempt, Notification};
use notification::store::{InboxQuery, NotificationStore};
use serde::Serialize;

use crate::cli::InboxArgs;
use crate::exit::CliError;

/// What `--json` prints.
#[derive(Debug, Serialize)]
struct Inbox {
    user_id: String,
    unread: u64,
    notifications: Vec<InboxEntry>,
}

/// One notification, with its attempt log under `--attempts`.
#[derive(Debug, Serialize)]
struct InboxEntry {
    #[serde(flatten)]
    notification: Notification,
    #[serde(skip_serializing_if = "Option::is_none")]
    attempt_log: Option<Vec<DeliveryAttempt>>,
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
    let outcome = list(&store, &args.user, &query, args.attempts).await;
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
    with_attempts: bool,
) -> anyhow::Result<Inbox> {
    let page = store.list_for_user(user, query).await?;
    let unread = store.unread_count(user).await?;
    let mut notifications = Vec::with_capacity(page.items.len());
    for notification in page.items {
        let attempt_log = if with_attempts {
            Some(store.list_attempts(user, notification.id).await?)
        } else {
            None
        };
        notifications.push(InboxEntry {
            notification,
            attempt_log,
        });
    }
    Ok(Inbox {
        user_id: user.to_owned(),
        unread,
        notifications,
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
        "TRIES".to_owned(),
        "READ".to_owned(),
        "TITLE".to_owned(),
    ]];
    for entry in &inbox.notifications {
        let notification = &entry.notification;
        rows.push([
            notification
                .created_at
                .format("%Y-%m-%d %H:%M:%S")
                .to_string(),
            notification.kind.as_str().to_owned(),
            notification.status.as_str().to_owned(),
            notification.attempts.to_string(),
            if notification.is_read { "yes" } else { "no" }.to_owned(),
            notification.title.replace('\n', " "),
        ]);
        for attempt in entry.attempt_log.iter().flatten() {
            rows.push([
                format!(
                    "  #{} {}",
                    attempt.number,
                    attempt.started_at.format("%H:%M:%S%.3f")
                ),
                attempt.provider.clone(),
                attempt.outcome.as_str().to_owned(),
                attempt
                    .duration_ms
                    .map_or_else(|| "?".to_owned(), |ms| format!("{ms}ms")),
                String::new(),
                attempt
                    .error
                    .as_deref()
                    .unwrap_or_default()
                    .replace('\n', " "),
            ]);
        }
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

        let inbox = list(&store, "u-1", &InboxQuery::default(), false)
            .await
            .unwrap();
        assert_eq!(inbox.unread, 1);
        let titles: Vec<&str> = inbox
            .notifications
            .iter()
            .map(|n| n.notification.title.as_str())
            .collect();
        assert_eq!(titles, ["Second", "First"]);

        let mut table = Vec::new();
        write_table(&inbox, &mut table).unwrap();
        let table = String::from_utf8(table).unwrap();
        assert!(
            table.starts_with("u-1: 2 notifications shown, 1 unread"),
            "{table}"
        );
        assert!(
            table.contains("email   pending  0      yes   Second"),
            "{table}"
        );
    }

    #[tokio::test]
    async fn attempts_shows_each_attempt_under_its_notification() {
        use messaging_model::{AttemptOutcome, DeliveryAttempt};
        let store = InMemoryNotificationStore::new();
        let n = Notification::new("u-3", NotificationKind::Email, "Welcome", "a");
        store.record(&n).await.unwrap();
        let sending = store
            .begin_attempt(n.id, 0, chrono::Utc::now())
            .await
            .unwrap();
        store
            .record_attempt(
                &DeliveryAttempt::new(&sending, 1, "smtp", AttemptOutcome::Failed)
                    .with_error("451 4.3.0 \u{1b}[31mtry later")
                    .with_duration(std::time::Duration::from_millis(12)),
            )
            .await
            .unwrap();

        let inbox = list(&store, "u-3", &InboxQuery::default(), true)
            .await
            .unwrap();
        let mut table = Vec::new();
        write_table(&inbox, &mut table).unwrap();
        let table = String::from_utf8(table).unwrap();
        assert!(
            table.contains("email  failed  1      no    Welcome"),
            "{table}"
        );
        assert!(table.contains("smtp   failed  12ms"), "{table}");
        assert!(table.contains("451 4.3.0"), "{table}");
        assert!(
            !table.contains('\u{1b}'),
            "errors cannot drive the terminal: {table}"
        );

        let json = serde_json::to_value(&inbox).unwrap();
        assert_eq!(
            json["notifications"][0]["attempt_log"][0]["outcome"],
            "failed"
        );
        assert_eq!(json["notifications"][0]["attempts"], 1);
        let plain = list(&store, "u-3", &InboxQuery::default(), false)
            .await
            .unwrap();
        assert!(
            serde_json::to_value(&plain).unwrap()["notifications"][0]
                .get("attempt_log")
                .is_none()
        );
    }
}
