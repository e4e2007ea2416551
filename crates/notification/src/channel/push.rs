//! Push notifications through HTTP providers: an FCM HTTP v1-style API and a
//! generic JSON webhook.

use std::sync::Arc;

use async_trait::async_trait;
use reqwest::Url;
use serde_json::json;
use tracing::{Instrument, Span, info_span};

use super::http::{HttpSender, answer_id, parse_url};
use super::webhook::{Webhook, WebhookConfig};
use super::{HttpClientConfig, PushChannel, PushMessage, SendReceipt};
use crate::NotificationError;

/// Where the FCM provider gets its OAuth 2 access token. Real deployments mint
/// it from a service account (and cache it until it expires); tests use
/// [`StaticAccessToken`].
#[async_trait]
pub trait AccessTokenSource: Send + Sync + 'static {
    /// A currently valid access token.
    async fn access_token(&self) -> Result<String, NotificationError>;
}

/// The same token every time.
#[derive(Clone)]
pub struct StaticAccessToken(String);

impl StaticAccessToken {
    /// A source that always gives `token`.
    pub fn new(token: impl Into<String>) -> Self {
        Self(token.into())
    }
}

impl std::fmt::Debug for StaticAccessToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StaticAccessToken(<redacted>)")
    }
}

#[async_trait]
impl AccessTokenSource for StaticAccessToken {
    async fn access_token(&self) -> Result<String, NotificationError> {
        Ok(self.0.clone())
    }
}

/// An FCM HTTP v1-style project.
///
/// ```
/// use notification::channel::{FcmConfig, StaticAccessToken};
/// let config = FcmConfig::new("my-project", StaticAccessToken::new("ya29.token"))
///     .with_base_url("http://127.0.0.1:8080");
/// assert_eq!(config.project_id, "my-project");
/// ```
#[derive(Clone)]
#[non_exhaustive]
pub struct FcmConfig {
    /// The API's base URL (`https://fcm.googleapis.com`).
    pub base_url: String,
    /// The project id, part of the path.
    pub project_id: String,
    /// Where bearer tokens come from.
    pub tokens: Arc<dyn AccessTokenSource>,
    /// Timeouts and retries.
    pub http: HttpClientConfig,
}

impl std::fmt::Debug for FcmConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FcmConfig")
            .field("base_url", &self.base_url)
            .field("project_id", &self.project_id)
            .field("http", &self.http)
            .finish_non_exhaustive()
    }
}

impl FcmConfig {
    /// A project at the public API.
    pub fn new(project_id: impl Into<String>, tokens: impl AccessTokenSource) -> Self {
        Self {
            base_url: "https://fcm.googleapis.com".to_owned(),
            project_id: project_id.into(),
            tokens: Arc::new(tokens),
            http: HttpClientConfig::default(),
        }
    }

    /// Sets the base URL (a local server in tests).
    pub fn with_base_url(mut self, base_url: impl Into<String>) -> Self {
        self.base_url = base_url.into();
        self
    }

    /// Sets timeouts and retries.
    pub fn with_http(mut self, http: HttpClientConfig) -> Self {
        self.http = http;
        self
    }
}

/// Sends push notifications with `POST {base}/v1/projects/{project}/messages:send`
/// and a bearer token; the body is
/// `{"message": {"token": …, "notification": {"title": …, "body": …}, "data": {…}}}`.
/// The answer's `name` (`projects/…/messages/…`) is kept as the message id.
#[derive(Clone)]
pub struct FcmPushProvider {
    url: Url,
    tokens: Arc<dyn AccessTokenSource>,
    http: HttpSender,
}

impl std::fmt::Debug for FcmPushProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FcmPushProvider")
            .field("url", &self.url.as_str())
            .finish_non_exhaustive()
    }
}

impl FcmPushProvider {
    /// A provider for this project.
    pub fn new(config: FcmConfig) -> Result<Self, NotificationError> {
        let project = &config.project_id;
        if project.is_empty()
            || !project
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
        {
            return Err(NotificationError::Config {
                channel: "fcm",
                reason: "the project id must be letters, digits, '-', '_', '.' or ':'".to_owned(),
            });
        }
        let base = config.base_url.trim_end_matches('/');
        let url = parse_url(
            "fcm",
            &format!("{base}/v1/projects/{project}/messages:send"),
        )?;
        Ok(Self {
            url,
            tokens: config.tokens,
            http: HttpSender::new("fcm", &config.http)?,
        })
    }
}

#[async_trait]
impl PushChannel for FcmPushProvider {
    fn provider(&self) -> &str {
        "fcm"
    }

    async fn send_push(&self, push: &PushMessage) -> Result<SendReceipt, NotificationError> {
        let token = self.tokens.access_token().await?;
        let body = json!({
            "message": {
                "token": push.device_token.as_str(),
                "notification": {"title": push.title, "body": push.body},
                "data": push.data,
            }
        });
        let answer = self
            .http
            .send(|client| {
                client
                    .post(self.url.clone())
                    .bearer_auth(&token)
                    .json(&body)
            })
            .instrument(send_span("fcm", push))
            .await?;
        Ok(SendReceipt::new("fcm", answer_id(&answer.body)))
    }
}

/// Sends push notifications by POSTing JSON to a webhook:
/// `{"token": …, "title": …, "body": …, "data": {…}, "reference": …}`, the
/// reference also sent as the `Idempotency-Key` header.
#[derive(Clone)]
pub struct WebhookPushProvider {
    webhook: Webhook,
}

impl std::fmt::Debug for WebhookPushProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.webhook.debug_as("WebhookPushProvider", f)
    }
}

impl WebhookPushProvider {
    /// A provider for this webhook.
    pub fn new(config: WebhookConfig) -> Result<Self, NotificationError> {
        Ok(Self {
            webhook: Webhook::new(config)?,
        })
    }
}

#[async_trait]
impl PushChannel for WebhookPushProvider {
    fn provider(&self) -> &str {
        "webhook"
    }

    async fn send_push(&self, push: &PushMessage) -> Result<SendReceipt, NotificationError> {
        let body = json!({
            "token": push.device_token.as_str(),
            "title": push.title,
            "body": push.body,
            "data": push.data,
            "reference": push.reference,
        });
        self.webhook
            .post(&body, push.reference.as_deref())
            .instrument(send_span("webhook", push))
            .await
    }
}

/// The span of one push send through `provider`.
fn send_span(provider: &'static str, push: &PushMessage) -> Span {
    info_span!(
        "push_send",
        provider,
        reference = push.reference.as_deref().unwrap_or("")
    )
}
