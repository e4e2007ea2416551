//! `messaging dlq list|show|replay|purge TOPIC`.

use std::io::{IsTerminal, Write};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use messaging_core::{DeadLetter, MessagingError, MessagingService};

use crate::cli::{DlqAction, DlqArgs};
use crate::exit::CliError;

/// Dead letters read per round trip.
const PAGE: usize = 200;

/// Runs a dead-letter action.
pub(crate) async fn run(args: DlqArgs) -> anyhow::Result<()> {
    // Refused before connecting: nothing to gain from a round trip.
    if let DlqAction::Purge { topic, yes: false } = &args.action {
        return Err(confirmation(topic).into());
    }
    let service = crate::backend::shared(&args.backend, "dlq").await?;
    let progress = std::io::stderr().is_terminal();
    let mut out = std::io::stdout().lock();
    execute(&service, args.action, progress, &mut out).await
}

pub(crate) async fn execute(
    service: &MessagingService,
    action: DlqAction,
    progress: bool,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    match action {
        DlqAction::List { topic, limit, json } => {
            let dead = service.dead_letters(&topic, limit).await?;
            if json {
                writeln!(out, "{}", serde_json::to_string_pretty(&dead)?)?;
            } else {
                write_table(&dead, out)?;
            }
        }
        DlqAction::Show { topic, id } => {
            let dead = find(service, &topic, &id).await?;
            writeln!(out, "{}", serde_json::to_string_pretty(&dead)?)?;
        }
        DlqAction::Replay {
            topic,
            id: Some(id),
            ..
        } => {
            service.replay_dead_letter(&topic, &id).await?;
            writeln!(out, "replayed 1 dead letter of {topic}")?;
        }
        DlqAction::Replay {
            topic, id: None, ..
        } => {
            let replayed = replay_all(service, &topic, progress).await?;
            writeln!(out, "replayed {replayed} dead letters of {topic}")?;
        }
        DlqAction::Purge { topic, yes } => {
            messaging_model::validate_topic(&topic)?;
            if !yes {
                return Err(confirmation(&topic).into());
            }
            let purged = service.purge_dead_letters(&topic).await?;
            writeln!(out, "purged {purged} dead letters of {topic}")?;
        }
    }
    Ok(())
}

fn confirmation(topic: &str) -> CliError {
    CliError::ConfirmationRequired {
        what: format!("purging the dead letters of {topic}"),
    }
}

/// One dead letter by id.
async fn find(service: &MessagingService, topic: &str, id: &str) -> anyhow::Result<DeadLetter> {
    service.find_dead_letter(topic, id).await?.ok_or_else(|| {
        MessagingError::DeadLetterNotFound {
            topic: topic.to_owned(),
            id: id.to_owned(),
        }
        .into()
    })
}

/// Replays every dead letter of `topic`, with a progress bar when `progress`.
async fn replay_all(
    service: &MessagingService,
    topic: &str,
    progress: bool,
) -> anyhow::Result<u64> {
    let total = service.stats(topic).await?.dead_lettered;
    let bar = if progress {
        ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr())
    } else {
        ProgressBar::hidden()
    };
    if let Ok(style) =
        ProgressStyle::with_template("{bar:40} {pos}/{len} dead letters replayed ({per_sec})")
    {
        bar.set_style(style);
    }
    let mut replayed = 0;
    loop {
        let batch = service.dead_letters(topic, PAGE).await?;
        if batch.is_empty() {
            break;
        }
        for dead in batch {
            match service.replay_dead_letter(topic, &dead.id).await {
                Ok(()) => {
                    replayed += 1;
                    bar.inc(1);
                }
                // Replayed meanwhile by someone else: not ours to count.
                Err(MessagingError::DeadLetterNotFound { .. }) => {}
                Err(error) => {
                    bar.abandon();
                    return Err(error.into());
                }
            }
        }
    }
    bar.finish_and_clear();
    Ok(replayed)
}

fn write_table(dead: &[DeadLetter], out: &mut impl Write) -> std::io::Result<()> {
    let mut rows = vec![[
        "ID".to_owned(),
        "GROUP".to_owned(),
        "ATTEMPTS".to_owned(),
        "DEAD AT".to_owned(),
        "MESSAGE".to_owned(),
        "ERROR".to_owned(),
    ]];
    for letter in dead {
        rows.push([
            letter.id.clone(),
            letter.group.clone(),
            letter.attempts.to_string(),
            letter.dead_at.format("%Y-%m-%d %H:%M:%S").to_string(),
            letter.message.id.to_string(),
            letter.error.replace('\n', " "),
        ]);
    }
    crate::commands::stats::write_aligned(&rows, out)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use messaging_core::{HandlerError, SubscribeOptions};
    use messaging_model::Message;
    use serde_json::json;

    use super::*;

    async fn wait_for_dead(service: &MessagingService, topic: &str, count: u64) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while service.stats(topic).await.unwrap().dead_lettered < count {
            assert!(
                tokio::time::Instant::now() < deadline,
                "dead letters never arrived"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    #[tokio::test]
    async fn lists_shows_replays_and_purges_dead_letters() {
        let service = MessagingService::in_memory();
        let options = SubscribeOptions::new("mailer");
        service
            .subscribe_with("mail.send", options, |_message: Message| async {
                Err::<(), _>(HandlerError::permanent("no server"))
            })
            .await
            .unwrap();
        for n in 0..3 {
            service.publish("mail.send", json!({"n": n})).await.unwrap();
        }
        wait_for_dead(&service, "mail.send", 3).await;
        service.shutdown().await;

        let mut out = Vec::new();
        execute(
            &service,
            DlqAction::List {
                topic: "mail.send".into(),
                limit: 10,
                json: true,
            },
            false,
            &mut out,
        )
        .await
        .unwrap();
        let listed: Vec<DeadLetter> = serde_json::from_slice(&out).unwrap();
        assert_eq!(listed.len(), 3);
        assert_eq!(listed[0].error, "permanent failure: no server");

        out.clear();
        execute(
            &service,
            DlqAction::Show {
                topic: "mail.send".into(),
                id: listed[1].id.clone(),
            },
            false,
            &mut out,
        )
        .await
        .unwrap();
        let shown: DeadLetter = serde_json::from_slice(&out).unwrap();
        assert_eq!(shown, listed[1]);
        let missing = execute(
            &service,
            DlqAction::Show {
                topic: "mail.send".into(),
                id: "nope".into(),
            },
            false,
            &mut out,
        )
        .await
        .unwrap_err();
        assert_eq!(crate::exit::code(&missing), crate::exit::NOT_FOUND);

        out.clear();
        execute(
            &service,
            DlqAction::Replay {
                topic: "mail.send".into(),
                id: Some(listed[0].id.clone()),
                all: false,
            },
            false,
            &mut out,
        )
        .await
        .unwrap();
        execute(
            &service,
            DlqAction::Replay {
                topic: "mail.send".into(),
                id: None,
                all: true,
            },
            false,
            &mut out,
        )
        .await
        .unwrap();
        assert!(String::from_utf8_lossy(&out).contains("replayed 2 dead letters"));
        assert_eq!(service.stats("mail.send").await.unwrap().dead_lettered, 0);

        let refused = execute(
            &service,
            DlqAction::Purge {
                topic: "mail.send".into(),
                yes: false,
            },
            false,
            &mut out,
        )
        .await
        .unwrap_err();
        assert_eq!(crate::exit::code(&refused), crate::exit::USAGE);
    }
}
