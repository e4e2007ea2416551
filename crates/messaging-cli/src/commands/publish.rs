//! `messaging publish TOPIC --json '{…}' [--delay 30s]`.

use std::io::Read;

use anyhow::Context;
use chrono::Utc;

use crate::cli::PublishArgs;
use crate::exit::CliError;

/// Publishes one message and prints its id.
pub(crate) async fn run(args: PublishArgs) -> anyhow::Result<()> {
    let payload = parse_payload(&args.json)?;
    // Checked before connecting, so bad input is reported as such even without a server.
    let mut message = messaging_model::Message::new(&args.topic, payload)?;
    if let Some(max_retry) = args.max_retry {
        message = message.with_max_retry(max_retry)?;
    }
    for (key, value) in args.metadata {
        message = message.with_metadata(key, value);
    }
    if let Some(priority) = args.priority {
        message = priority.set_on(message);
    }
    if let Some(delay) = args.delay {
        messaging_model::validate_delay(delay).map_err(|error| CliError::InvalidSetting {
            name: "--delay".into(),
            reason: error.to_string(),
        })?;
    }
    let service = crate::backend::shared(&args.backend, "publish").await?;
    match args.delay {
        None => {
            service
                .publish_message(&message)
                .await
                .with_context(|| format!("publishing to {}", args.topic))?;
        }
        Some(delay) => {
            // Within MAX_DELAY the conversion and the addition are in range.
            let at = Utc::now() + chrono::Duration::from_std(delay).unwrap_or_default();
            service
                .publish_message_at(&message, at)
                .await
                .with_context(|| format!("scheduling on {}", args.topic))?;
            eprintln!("scheduled for {}", at.to_rfc3339());
        }
    }
    println!("{}", message.id);
    Ok(())
}

/// The payload from `--json`: inline, or `-` for stdin.
pub(crate) fn parse_payload(text: &str) -> anyhow::Result<serde_json::Value> {
    let text = if text == "-" {
        let mut input = String::new();
        std::io::stdin()
            .read_to_string(&mut input)
            .context("reading the payload from stdin")?;
        input
    } else {
        text.to_owned()
    };
    Ok(serde_json::from_str(&text).map_err(|source| CliError::MalformedJson { source })?)
}
