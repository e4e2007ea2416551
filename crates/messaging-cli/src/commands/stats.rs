//! `messaging stats [TOPIC…] [--json]`.

use messaging_core::{MessagingService, TopicStats};

use crate::cli::StatsArgs;
use crate::exit::CliError;

/// Prints the figures of every topic, or of the named ones.
pub(crate) async fn run(args: StatsArgs) -> anyhow::Result<()> {
    let service = crate::backend::shared(&args.backend, "stats").await?;
    let stats = collect(&service, &args.topics).await?;
    let mut out = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer_pretty(&mut out, &stats)?;
        writeln!(out)?;
    } else {
        write_table(&stats, &mut out)?;
    }
    Ok(())
}

use std::io::Write;

/// Figures of `topics` (every topic when empty); a named topic that does not
/// exist is an error.
pub(crate) async fn collect(
    service: &MessagingService,
    topics: &[String],
) -> anyhow::Result<Vec<TopicStats>> {
    let existing: Vec<String> = service
        .list_topics()
        .await?
        .into_iter()
        .map(messaging_model::Topic::into_string)
        .collect();
    let wanted: Vec<String> = if topics.is_empty() {
        existing
    } else {
        for topic in topics {
            messaging_model::validate_topic(topic)?;
            if !existing.contains(topic) {
                return Err(CliError::TopicNotFound {
                    topic: topic.clone(),
                }
                .into());
            }
        }
        topics.to_vec()
    };
    let mut stats = Vec::with_capacity(wanted.len());
    for topic in &wanted {
        stats.push(service.stats(topic).await?);
    }
    Ok(stats)
}

/// One row per topic and group, aligned for people.
pub(crate) fn write_table(stats: &[TopicStats], out: &mut impl Write) -> std::io::Result<()> {
    let mut rows = vec![[
        "TOPIC".to_owned(),
        "LENGTH".to_owned(),
        "SCHEDULED".to_owned(),
        "DEAD".to_owned(),
        "GROUP".to_owned(),
        "PENDING".to_owned(),
        "LAG".to_owned(),
        "PAUSED".to_owned(),
    ]];
    for topic in stats {
        let head = [
            topic.topic.clone(),
            topic.length.to_string(),
            topic.scheduled.to_string(),
            topic.dead_lettered.to_string(),
        ];
        if topic.groups.is_empty() {
            let [a, b, c, d] = head.clone();
            let paused = if topic.paused { "yes" } else { "-" };
            rows.push([
                a,
                b,
                c,
                d,
                "-".into(),
                "-".into(),
                "-".into(),
                paused.into(),
            ]);
        }
        for group in &topic.groups {
            let [a, b, c, d] = head.clone();
            rows.push([
                a,
                b,
                c,
                d,
                group.name.clone(),
                group.pending.to_string(),
                group.lag.to_string(),
                if group.paused { "yes" } else { "no" }.to_owned(),
            ]);
        }
    }
    write_aligned(&rows, out)
}

/// Writes rows as space-separated columns, each as wide as its widest cell.
pub(crate) fn write_aligned<const N: usize>(
    rows: &[[String; N]],
    out: &mut impl Write,
) -> std::io::Result<()> {
    // Cells come from messages, errors and subjects: never let them drive the terminal.
    let rows: Vec<[std::borrow::Cow<'_, str>; N]> = rows
        .iter()
        .map(|row| std::array::from_fn(|i| crate::commands::terminal_safe(&row[i])))
        .collect();
    let mut widths = [0usize; N];
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    for row in &rows {
        let mut line = String::new();
        for (index, (cell, width)) in row.iter().zip(widths).enumerate() {
            if index + 1 == N {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<width$}  "));
            }
        }
        writeln!(out, "{}", line.trim_end())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn tables_escape_control_characters_of_their_cells() {
        // The `dlq list` and `inbox` tables go through here with message errors
        // and subjects in their cells.
        let rows = [
            ["ID".to_owned(), "ERROR".to_owned()],
            [
                "1".to_owned(),
                "smtp \u{1b}]0;owned\u{7}\u{1b}[2Jgone\rx".to_owned(),
            ],
        ];
        let mut out = Vec::new();
        write_aligned(&rows, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(!text.contains('\u{1b}') && !text.contains('\r') && !text.contains('\u{7}'));
        assert!(
            text.contains("smtp \\u{1b}]0;owned\\u{7}\\u{1b}[2Jgone\\rx"),
            "{text}"
        );
    }

    #[tokio::test]
    async fn reports_length_lag_and_unknown_topics() {
        let service = MessagingService::in_memory();
        service
            .backend()
            .ensure_group(
                &"orders.placed".parse().unwrap(),
                "billing",
                Default::default(),
            )
            .await
            .unwrap();
        service
            .publish("orders.placed", json!({"n": 1}))
            .await
            .unwrap();
        service
            .publish("orders.placed", json!({"n": 2}))
            .await
            .unwrap();
        service
            .publish_delayed(
                "orders.placed",
                json!({"n": 3}),
                std::time::Duration::from_secs(3600),
            )
            .await
            .unwrap();

        let stats = collect(&service, &[]).await.unwrap();
        assert_eq!(stats.len(), 1);
        assert_eq!(stats[0].length, 2);
        assert_eq!(stats[0].scheduled, 1);
        assert_eq!(stats[0].groups[0].lag, 2);

        let mut table = Vec::new();
        write_table(&stats, &mut table).unwrap();
        let table = String::from_utf8(table).unwrap();
        let lines: Vec<&str> = table.lines().collect();
        assert!(lines[0].starts_with("TOPIC"), "{table}");
        assert_eq!(
            lines[1].split_whitespace().collect::<Vec<_>>(),
            ["orders.placed", "2", "1", "0", "billing", "0", "2", "no"]
        );

        service
            .pause("orders.placed", Some("billing"))
            .await
            .unwrap();
        let stats = collect(&service, &[]).await.unwrap();
        assert!(stats[0].groups[0].paused && !stats[0].paused);
        let mut table = Vec::new();
        write_table(&stats, &mut table).unwrap();
        let table = String::from_utf8(table).unwrap();
        assert!(table.lines().nth(1).unwrap().ends_with("yes"), "{table}");

        let missing = collect(&service, &["nope".into()]).await.unwrap_err();
        assert_eq!(crate::exit::code(&missing), crate::exit::NOT_FOUND);
    }
}
