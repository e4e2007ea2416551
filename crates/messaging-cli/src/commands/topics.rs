//! `messaging topics list|create|delete`.

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
        TopicsAction::Create { topic, partitions } => {
            if partitions > 1 {
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
}
