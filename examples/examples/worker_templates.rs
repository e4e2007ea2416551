//! A notification worker: `user.registered` events become welcome emails,
//! rendered from a template of your own, sent over SMTP, recorded in the inbox.
//!
//! ```sh
//! cargo run -p messaging-examples --example worker_templates
//! ```
//!
//! The SMTP server is an in-process one (`smtp-sink`) so the example runs
//! anywhere; point `SmtpConfig` at your relay in production.

use std::sync::Arc;
use std::time::Duration;

use messaging_core::MessagingService;
use messaging_model::{MessageTemplate, NotificationStatus, TemplateKind, topics};
use notification::NotificationService;
use notification::channel::{SmtpConfig, SmtpEmailChannel};
use notification::events::WELCOME_EMAIL_TEMPLATE;
use notification::store::InboxQuery;
use serde_json::json;
use smtp_sink::SmtpSink;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let sink = SmtpSink::start().await?;
    let email = SmtpEmailChannel::new(
        SmtpConfig::dangerous_unencrypted(sink.host())
            .with_port(sink.port())
            .with_from("hello@shop.example", Some("The Shop")),
    )?;
    let notifications = Arc::new(NotificationService::in_memory().with_email(Arc::new(email)));

    // Your wording for the welcome email: strict handlebars, checked now.
    notifications
        .create_template(
            MessageTemplate::new(
                WELCOME_EMAIL_TEMPLATE,
                TemplateKind::Email,
                "Hello {{name}},\n\nthanks for joining The Shop with {{email}}.\n",
            )
            .with_subject("Welcome to The Shop, {{name}}")
            .with_variables(["name", "email"]),
        )
        .await?;

    // The default rules: user.registered -> welcome email, wallet.recharged -> notice.
    let messaging = MessagingService::in_memory();
    notifications.listen_to_events(&messaging).await?;
    messaging
        .publish(
            topics::USER_REGISTERED,
            json!({"user_id": "u-1", "email": "ada@example.com", "name": "Ada"}),
        )
        .await?;

    let mail = sink
        .wait_for_messages(1, Duration::from_secs(10))
        .await?
        .remove(0);
    println!(
        "received: {:?} for {:?}",
        mail.subject().unwrap_or_default(),
        mail.recipients
    );
    assert_eq!(mail.subject().as_deref(), Some("Welcome to The Shop, Ada"));

    // The send is recorded: `sent` once the server accepted it.
    let store = notifications.notifications().clone();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let page = store.list_for_user("u-1", &InboxQuery::default()).await?;
        if let Some(sent) = page
            .items
            .iter()
            .find(|n| n.status == NotificationStatus::Sent)
        {
            println!(
                "inbox of u-1: {:?}, status {}",
                sent.title,
                sent.status.as_str()
            );
            break;
        }
        if tokio::time::Instant::now() > deadline {
            return Err("the send was not recorded as sent within 10 s".into());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    messaging.shutdown().await;
    sink.shutdown();
    Ok(())
}
