//! `messaging serve`: the HTTP API (`messaging-http`) over the shared Redis
//! backend and the PostgreSQL notification store; `messaging token`: a user
//! token for trying it.

use std::sync::Arc;

use anyhow::Context;
use messaging_core::MessagingService;
use messaging_http::{AppState, DeliveryWebhook, HttpConfig, InboxEvents, UserTokens, Webhooks};
use notification::unsubscribe::UnsubscribeKey;
use notification_delivery_events::apply::DeliveryEventApplier;
use notification_delivery_events::mailgun::MailgunVerifier;
use notification_delivery_events::postmark::PostmarkVerifier;
use notification_delivery_events::sendgrid::SendGridVerifier;
use notification_delivery_events::twilio::TwilioVerifier;

use crate::cli::{HttpSecretArgs, ServeArgs, TokenArgs, WebhookArgs};
use crate::exit::CliError;

/// The user token key, which both commands need.
fn user_key(secrets: &HttpSecretArgs) -> Result<&str, CliError> {
    secrets
        .user_key
        .as_deref()
        .filter(|key| !key.is_empty())
        .ok_or(CliError::MissingSecret {
            what: "the user token key",
            flag: "--user-key",
            env: "MESSAGING_HTTP_USER_KEY",
        })
}

/// Serves the API until SIGTERM or Ctrl-C; refuses to start without both secrets.
pub(crate) async fn run(args: ServeArgs) -> anyhow::Result<()> {
    let user_key = user_key(&args.secrets)?;
    let admin_token = args
        .admin_token
        .as_deref()
        .filter(|token| !token.is_empty())
        .ok_or(CliError::MissingSecret {
            what: "the admin token",
            flag: "--admin-token",
            env: "MESSAGING_HTTP_ADMIN_TOKEN",
        })?;
    let config = HttpConfig::new(user_key, admin_token)?
        .with_allowed_origins(&args.cors_origins)?
        .with_body_limit(args.body_limit);
    let Some(url) = args.database.database_url.as_deref() else {
        return Err(CliError::InvalidSetting {
            name: "--database-url".into(),
            reason: "serve reads the inboxes from PostgreSQL: pass --database-url URL or set DATABASE_URL"
                .into(),
        }
        .into());
    };
    let backend = crate::backend::shared_redis(&args.backend, "serve").await?;
    let schedules: Arc<dyn messaging_core::schedule::ScheduleBackend> = backend.clone();
    let messaging = Arc::new(MessagingService::new(backend));
    let store =
        crate::pipeline::connect_postgres(url, args.database.db_schema.as_deref(), None).await?;
    store.migrate().await?;
    let events = InboxEvents::new();
    let listener = store
        .inbox_listener()
        .await
        .context("listening to inbox changes")?;
    let following = tokio::spawn(events.clone().follow(listener));
    let state = AppState::new(messaging, Arc::new(store.clone()), events, config)?
        .with_webhooks(webhooks(&args.webhooks, &store)?)
        .with_schedules(schedules);
    let socket = tokio::net::TcpListener::bind(args.bind)
        .await
        .with_context(|| format!("cannot listen on {}", args.bind))?;
    let addr = socket.local_addr()?;
    if !addr.ip().is_loopback() {
        tracing::warn!(%addr, "the HTTP API listens beyond loopback: serve it behind TLS");
    }
    let shutdown = super::shutdown_signal();
    // Scripts and tests wait for this line.
    eprintln!("serve ready {addr}");
    let closing = state.clone();
    let served = axum::serve(socket, messaging_http::router(state))
        .with_graceful_shutdown(async move {
            shutdown.await;
            eprintln!("stopping: closing event streams, finishing requests");
            closing.close_event_streams();
        })
        .await;
    following.abort();
    store.close().await;
    served.context("serving HTTP")
}

/// The webhooks the secrets given turn on, over `store`.
fn webhooks(
    args: &WebhookArgs,
    store: &notification_store_postgres::PostgresStore,
) -> Result<Webhooks, CliError> {
    let invalid = |name: &str, reason: String| CliError::InvalidSetting {
        name: name.to_owned(),
        reason,
    };
    let store = Arc::new(store.clone());
    let mut webhooks = Webhooks::default();
    if let Some(key) = &args.unsubscribe_key {
        let key = UnsubscribeKey::new(key.clone().into_bytes())
            .map_err(|error| invalid("--unsubscribe-key", error.to_string()))?;
        webhooks = webhooks.with_unsubscribe(key, store.clone());
    }
    let applier = DeliveryEventApplier::new(store.clone(), store);
    if let Some(key) = &args.mailgun_signing_key {
        webhooks = webhooks.with_delivery(
            DeliveryWebhook::Mailgun(MailgunVerifier::new(key)),
            applier.clone(),
        );
    }
    if let Some(key) = &args.sendgrid_public_key {
        let verifier = SendGridVerifier::new(key)
            .map_err(|error| invalid("--sendgrid-public-key", error.to_string()))?;
        webhooks = webhooks.with_delivery(DeliveryWebhook::SendGrid(verifier), applier.clone());
    }
    if let (Some(token), Some(url)) = (&args.twilio_auth_token, &args.twilio_callback_url) {
        webhooks = webhooks.with_delivery(
            DeliveryWebhook::Twilio {
                verifier: TwilioVerifier::new(token),
                public_url: url.clone(),
            },
            applier.clone(),
        );
    }
    if let Some(credentials) = &args.postmark_credentials {
        let (user, password) = credentials.split_once(':').ok_or_else(|| {
            invalid(
                "--postmark-credentials",
                "expected USER:PASSWORD".to_owned(),
            )
        })?;
        webhooks = webhooks.with_delivery(
            DeliveryWebhook::Postmark(PostmarkVerifier::new(user, password)),
            applier.clone(),
        );
    }
    let topics: Vec<&String> = args
        .ses_topic_arns
        .iter()
        .filter(|arn| !arn.trim().is_empty())
        .collect();
    if !topics.is_empty() {
        webhooks = webhooks.with_delivery(
            DeliveryWebhook::Ses {
                verifier: notification_delivery_events::ses::SesVerifier::new()
                    .with_topic_arns(topics),
                certificates: Arc::new(HttpsCertificates::default()),
            },
            applier,
        );
    }
    Ok(webhooks)
}

/// SNS signing certificates fetched over HTTPS (the URL already checked to be
/// SNS's) and kept for the life of the process.
#[derive(Default)]
struct HttpsCertificates {
    client: std::sync::OnceLock<reqwest::Client>,
    fetched: std::sync::Mutex<std::collections::HashMap<String, Vec<u8>>>,
}

impl messaging_http::SnsCertificates for HttpsCertificates {
    fn certificate<'a>(
        &'a self,
        url: &'a str,
    ) -> futures::future::BoxFuture<'a, Result<Vec<u8>, String>> {
        Box::pin(async move {
            let kept = self
                .fetched
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .get(url)
                .cloned();
            if let Some(certificate) = kept {
                return Ok(certificate);
            }
            let client = self.client.get_or_init(|| {
                // reqwest is built without a crypto provider: ring, once.
                let _ = rustls::crypto::ring::default_provider().install_default();
                reqwest::Client::builder()
                    .timeout(std::time::Duration::from_secs(10))
                    .redirect(reqwest::redirect::Policy::none())
                    .build()
                    .unwrap_or_default()
            });
            let response = client
                .get(url)
                .send()
                .await
                .and_then(reqwest::Response::error_for_status)
                .map_err(|error| error.to_string())?;
            let certificate = response
                .bytes()
                .await
                .map_err(|error| error.to_string())?
                .to_vec();
            self.fetched
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .insert(url.to_owned(), certificate.clone());
            Ok(certificate)
        })
    }
}

/// Prints a user token for `args.user`.
pub(crate) fn token(args: TokenArgs) -> anyhow::Result<()> {
    let tokens = UserTokens::new(
        user_key(&args.secrets)?.as_bytes(),
        std::time::Duration::ZERO,
    )?;
    if args.user.trim().is_empty() || args.user.len() > messaging_http::MAX_USER_ID_LEN {
        return Err(CliError::InvalidSetting {
            name: "USER".into(),
            reason: "a user id of 1 to 256 bytes".into(),
        }
        .into());
    }
    println!("{}", tokens.mint(&args.user, args.ttl)?);
    Ok(())
}

#[cfg(test)]
mod tests {
    use messaging_http::SnsCertificates as _;

    use super::HttpsCertificates;

    #[tokio::test]
    async fn a_certificate_that_cannot_be_fetched_is_an_error_and_is_not_kept() {
        let certificates = HttpsCertificates::default();
        // Nothing listens on port 1 of loopback.
        let url = "https://127.0.0.1:1/SimpleNotificationService-test.pem";
        assert!(certificates.certificate(url).await.is_err());
        assert!(
            certificates.certificate(url).await.is_err(),
            "asked again, not kept"
        );
        assert!(certificates.fetched.lock().unwrap().is_empty());
    }
}
