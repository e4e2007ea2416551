//! `messaging suppressions list [--channel C] [--json] | remove ADDRESS [--channel C]`.

use std::io::Write;

use notification::store::{StoreError, Suppression, SuppressionStore};
use serde::Serialize;

use crate::cli::{SuppressionsAction, SuppressionsArgs};
use crate::commands::terminal_safe;
use crate::exit::CliError;

/// One suppression as `--json` prints it.
#[derive(Debug, Serialize)]
struct Entry {
    channel: &'static str,
    address: String,
    reason: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<String>,
    created_at: chrono::DateTime<chrono::Utc>,
}

impl From<Suppression> for Entry {
    fn from(s: Suppression) -> Self {
        Self {
            channel: s.channel.as_str(),
            address: s.address,
            reason: s.reason.as_str(),
            detail: s.detail,
            created_at: s.created_at,
        }
    }
}

/// Lists or removes suppressions in the PostgreSQL store.
pub(crate) async fn run(args: SuppressionsArgs) -> anyhow::Result<()> {
    let Some(url) = args.database.database_url.as_deref() else {
        return Err(CliError::InvalidSetting {
            name: "--database-url".into(),
            reason:
                "suppressions are kept in PostgreSQL: pass --database-url URL or set DATABASE_URL"
                    .into(),
        }
        .into());
    };
    let store =
        crate::pipeline::connect_postgres(url, args.database.db_schema.as_deref(), Some(2)).await?;
    let outcome = act(&store, args.action, &mut std::io::stdout().lock()).await;
    store.close().await;
    outcome
}

async fn act(
    store: &dyn SuppressionStore,
    action: SuppressionsAction,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    match action {
        SuppressionsAction::List { channel, json } => {
            let entries: Vec<Entry> = store
                .list_suppressions(channel.map(|c| c.kind()))
                .await?
                .into_iter()
                .map(Entry::from)
                .collect();
            if json {
                serde_json::to_writer_pretty(&mut *out, &entries)?;
                writeln!(out)?;
            } else {
                write_table(&entries, out)?;
            }
        }
        SuppressionsAction::Remove { address, channel } => {
            if !store.remove_suppression(channel.kind(), &address).await? {
                return Err(StoreError::NotFound {
                    entity: "suppression",
                    key: format!("{} {address}", channel.kind().as_str()),
                }
                .into());
            }
            writeln!(
                out,
                "removed the {} suppression of {}",
                channel.kind().as_str(),
                terminal_safe(&address)
            )?;
        }
    }
    Ok(())
}

fn write_table(entries: &[Entry], out: &mut impl Write) -> std::io::Result<()> {
    writeln!(out, "{} suppressed", entries.len())?;
    if entries.is_empty() {
        return Ok(());
    }
    let mut rows = vec![[
        "CHANNEL".to_owned(),
        "ADDRESS".to_owned(),
        "REASON".to_owned(),
        "SINCE".to_owned(),
        "DETAIL".to_owned(),
    ]];
    for e in entries {
        rows.push([
            e.channel.to_owned(),
            terminal_safe(&e.address).into_owned(),
            e.reason.to_owned(),
            e.created_at.format("%Y-%m-%d %H:%M:%S").to_string(),
            terminal_safe(e.detail.as_deref().unwrap_or_default()).into_owned(),
        ]);
    }
    crate::commands::stats::write_aligned(&rows, out)
}

#[cfg(test)]
mod tests {
    use messaging_model::NotificationKind;
    use notification::store::{InMemorySuppressionStore, SuppressionReason};

    use super::*;
    use crate::cli::SuppressionChannel;

    #[tokio::test]
    async fn lists_then_removes_and_a_second_removal_is_not_found() {
        let store = InMemorySuppressionStore::new();
        store
            .suppress(
                &Suppression::new(
                    NotificationKind::Email,
                    "ann@example.com",
                    SuppressionReason::HardBounce,
                    chrono::Utc::now(),
                )
                .with_detail("550 \u{1b}[31mno such user"),
            )
            .await
            .unwrap();
        let mut out = Vec::new();
        act(
            &store,
            SuppressionsAction::List {
                channel: None,
                json: false,
            },
            &mut out,
        )
        .await
        .unwrap();
        let table = String::from_utf8(out).unwrap();
        assert!(table.starts_with("1 suppressed"), "{table}");
        assert!(
            table.contains("email    ann@example.com  hard_bounce"),
            "{table}"
        );
        assert!(!table.contains('\u{1b}'), "{table}");

        let remove = || SuppressionsAction::Remove {
            address: "Ann@example.com".into(),
            channel: SuppressionChannel::Email,
        };
        act(&store, remove(), &mut Vec::new()).await.unwrap();
        let error = act(&store, remove(), &mut Vec::new()).await.unwrap_err();
        assert_eq!(crate::exit::code(&error), crate::exit::NOT_FOUND, "{error}");
    }
}
