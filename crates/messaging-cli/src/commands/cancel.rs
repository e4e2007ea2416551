//! `messaging cancel TOPIC ID [--json]`.

use std::io::Write;

use messaging_core::MessagingService;
use thiserror::Error;
use uuid::Uuid;

use crate::cli::CancelArgs;
use crate::exit::CliError;

/// The message was not cancelled: no copy of it waits unreceived.
#[derive(Debug, Error)]
#[error(
    "message {id} of topic {topic} was not cancelled: no copy of it is waiting (it was \
     already delivered to a consumer group, handled, dead-lettered or cancelled, or is unknown)"
)]
pub(crate) struct NotCancelled {
    /// The topic.
    pub(crate) topic: String,
    /// The message id.
    pub(crate) id: Uuid,
}

/// Cancels one message.
pub(crate) async fn run(args: CancelArgs) -> anyhow::Result<()> {
    let id = parse_id(&args.id)?;
    messaging_model::validate_topic(&args.topic)?;
    let service = crate::backend::shared(&args.backend, "cancel").await?;
    let mut out = std::io::stdout().lock();
    execute(&service, &args.topic, id, args.json, &mut out).await
}

fn parse_id(text: &str) -> Result<Uuid, CliError> {
    Uuid::parse_str(text).map_err(|error| CliError::InvalidSetting {
        name: "ID".to_owned(),
        reason: format!("not a message id (a UUID): {error}"),
    })
}

pub(crate) async fn execute(
    service: &MessagingService,
    topic: &str,
    id: Uuid,
    json: bool,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let cancelled = service.cancel(topic, id).await?;
    if json {
        let answer = serde_json::json!({ "topic": topic, "id": id, "cancelled": cancelled });
        writeln!(out, "{}", serde_json::to_string_pretty(&answer)?)?;
        return Ok(());
    }
    if !cancelled {
        return Err(NotCancelled {
            topic: topic.to_owned(),
            id,
        }
        .into());
    }
    writeln!(out, "cancelled message {id} of {topic}")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn cancels_a_delayed_message_once_and_says_so() {
        let service = MessagingService::in_memory();
        let id = service
            .publish_delayed(
                "reminders.send",
                serde_json::json!({}),
                Duration::from_secs(3600),
            )
            .await
            .unwrap();
        let mut out = Vec::new();
        execute(&service, "reminders.send", id, false, &mut out)
            .await
            .unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            format!("cancelled message {id} of reminders.send\n")
        );
        assert_eq!(service.stats("reminders.send").await.unwrap().scheduled, 0);

        let again = execute(&service, "reminders.send", id, false, &mut Vec::new())
            .await
            .unwrap_err();
        assert!(again.downcast_ref::<NotCancelled>().is_some(), "{again}");
        assert_eq!(crate::exit::code(&again), crate::exit::NOT_FOUND);

        let mut out = Vec::new();
        execute(&service, "reminders.send", id, true, &mut out)
            .await
            .unwrap();
        let answer: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(answer["cancelled"], false);
        assert_eq!(answer["id"], id.to_string());
    }

    #[test]
    fn a_bad_id_is_a_usage_error() {
        let error: anyhow::Error = parse_id("not-a-uuid").unwrap_err().into();
        assert_eq!(crate::exit::code(&error), crate::exit::USAGE);
    }
}
