//! `messaging topics list|create|delete|pause|resume`.

use messaging_core::MessagingService;

use crate::cli::{TopicsAction, TopicsArgs};
use crate::exit::CliError;

/// Runs a topics action.
pub(crate) async fn run(args: TopicsArgs) -> anyhow::Result<()> {
    if let TopicsAction::Delete { topic, yes: false } = &args.action {
        return Err(confirmation(topic).into());
    }
    let service = crate::backend::shared(&args.backend, "topics").await?;
    let mut out = std::io::stdout().lock();
    execute(&service, args.action, &mut out).await
}

pub(crate) async fn execute(
    service: &MessagingService,
    action: TopicsAction,
    out: &mut impl std::io::Write,
) -> anyhow::Result<()> {
    match action {
        TopicsAction::List { json } => {
            let topics = service.list_topics().await?;
            if json {
                writeln!(out, "{}", serde_json::to_string(&topics)?)?;
            } else {
                for topic in topics {
                    writeln!(out, "{topic}")?;
                }
            }
        }
        TopicsAction::Create {
            topic,
            partitions,
            priorities,
        } => {
            if priorities {
                service.create_priority_topic(&topic).await?;
                writeln!(out, "created {topic} with priorities high, normal and low")?;
            } else if partitions > 1 {
                service.create_partitioned_topic(&topic, partitions).await?;
                writeln!(out, "created {topic} with {partitions} partitions")?;
            } else {
                service.create_topic(&topic).await?;
                writeln!(out, "created {topic}")?;
            }
        }
        TopicsAction::Delete { topic, yes } => {
            messaging_model::validate_topic(&topic)?;
            if !yes {
                return Err(confirmation(&topic).into());
            }
            if !service.delete_topic(&topic).await? {
                return Err(CliError::TopicNotFound { topic }.into());
            }
            writeln!(out, "deleted {topic}")?;
        }
        TopicsAction::Pause { topic, group, json } => {
            set_paused(service, &topic, group, true, json, out).await?;
        }
        TopicsAction::Resume { topic, group, json } => {
            set_paused(service, &topic, group, false, json, out).await?;
        }
    }
    Ok(())
}

/// Pauses or resumes `topic` for `group` (every group when `None`) and prints
/// what changed and whether the group (or topic) is paused now.
async fn set_paused(
    service: &MessagingService,
    topic: &str,
    group: Option<String>,
    pause: bool,
    json: bool,
    out: &mut impl std::io::Write,
) -> anyhow::Result<()> {
    messaging_model::validate_topic(topic)?;
    // A pause of a topic that is not there (a typo) would hold nothing.
    if !service
        .list_topics()
        .await?
        .iter()
        .any(|known| known.as_str() == topic)
    {
        return Err(CliError::TopicNotFound {
            topic: topic.to_owned(),
        }
        .into());
    }
    let group = group.as_deref();
    let changed = if pause {
        service.pause(topic, group).await?
    } else {
        service.resume(topic, group).await?
    };
    let state = service.pause_state(topic).await?;
    let paused = match group {
        Some(group) => state.is_paused(group),
        None => !state.is_empty(),
    };
    if json {
        let report = serde_json::json!({
            "topic": topic,
            "group": group,
            "changed": changed,
            "paused": paused,
        });
        writeln!(out, "{report}")?;
        return Ok(());
    }
    let whom = match group {
        Some(group) => format!("{topic} for group {group}"),
        None => format!("{topic} for every group"),
    };
    match (pause, changed) {
        (true, true) => writeln!(out, "paused {whom}")?,
        (true, false) => writeln!(out, "{whom} was already paused")?,
        (false, true) => writeln!(out, "resumed {whom}")?,
        (false, false) => writeln!(out, "{whom} was not paused")?,
    }
    if !pause && paused {
        writeln!(
            out,
            "{topic} is still paused for every group: resume it without --group"
        )?;
    }
    Ok(())
}

fn confirmation(topic: &str) -> CliError {
    CliError::ConfirmationRequired {
        what: format!("deleting topic {topic} with its groups and dead letters"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn creates_lists_and_deletes_topics() {
        let service = MessagingService::in_memory();
        let mut out = Vec::new();
        execute(
            &service,
            TopicsAction::Create {
                topic: "b.two".into(),
                partitions: 1,
                priorities: false,
            },
            &mut out,
        )
        .await
        .unwrap();
        execute(
            &service,
            TopicsAction::Create {
                topic: "a.one".into(),
                partitions: 1,
                priorities: false,
            },
            &mut out,
        )
        .await
        .unwrap();
        out.clear();
        execute(&service, TopicsAction::List { json: true }, &mut out)
            .await
            .unwrap();
        let listed: Vec<String> = serde_json::from_slice(&out).unwrap();
        assert_eq!(listed, ["a.one", "b.two"]);

        let refused = execute(
            &service,
            TopicsAction::Delete {
                topic: "a.one".into(),
                yes: false,
            },
            &mut out,
        )
        .await
        .unwrap_err();
        assert_eq!(crate::exit::code(&refused), crate::exit::USAGE);
        execute(
            &service,
            TopicsAction::Delete {
                topic: "a.one".into(),
                yes: true,
            },
            &mut out,
        )
        .await
        .unwrap();
        let missing = execute(
            &service,
            TopicsAction::Delete {
                topic: "a.one".into(),
                yes: true,
            },
            &mut out,
        )
        .await
        .unwrap_err();
        assert_eq!(crate::exit::code(&missing), crate::exit::NOT_FOUND);
    }

    #[tokio::test]
    async fn pauses_and_resumes_a_topic_saying_what_changed() {
        let service = MessagingService::in_memory();
        service.create_topic("a.one").await.unwrap();
        async fn printed(
            service: &MessagingService,
            action: TopicsAction,
        ) -> anyhow::Result<String> {
            let mut out = Vec::new();
            execute(service, action, &mut out).await?;
            Ok(String::from_utf8(out).unwrap())
        }
        let run = |action| printed(&service, action);
        let pause = |group: Option<&str>| TopicsAction::Pause {
            topic: "a.one".into(),
            group: group.map(str::to_owned),
            json: false,
        };
        let resume = |group: Option<&str>| TopicsAction::Resume {
            topic: "a.one".into(),
            group: group.map(str::to_owned),
            json: false,
        };
        assert_eq!(
            run(pause(Some("billing"))).await.unwrap(),
            "paused a.one for group billing\n"
        );
        assert_eq!(
            run(pause(Some("billing"))).await.unwrap(),
            "a.one for group billing was already paused\n"
        );
        assert_eq!(
            run(pause(None)).await.unwrap(),
            "paused a.one for every group\n"
        );
        let still = run(resume(Some("billing"))).await.unwrap();
        assert!(
            still.starts_with("resumed a.one for group billing\n"),
            "{still}"
        );
        assert!(still.contains("still paused for every group"), "{still}");
        assert_eq!(
            run(resume(None)).await.unwrap(),
            "resumed a.one for every group\n"
        );
        assert_eq!(
            run(resume(None)).await.unwrap(),
            "a.one for every group was not paused\n"
        );
        let missing = run(TopicsAction::Pause {
            topic: "no.such".into(),
            group: None,
            json: false,
        })
        .await
        .unwrap_err();
        assert_eq!(crate::exit::code(&missing), crate::exit::NOT_FOUND);
    }
}
