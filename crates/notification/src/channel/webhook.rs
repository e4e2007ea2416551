//! The generic JSON webhook the SMS and push providers share.

use std::fmt;

use reqwest::Url;
use serde_json::Value;

use super::http::{HttpSender, answer_id, parse_url};
use super::{HttpClientConfig, SendReceipt};
use crate::NotificationError;

/// A generic JSON webhook provider (SMS or push).
///
/// ```
/// use notification::channel::WebhookConfig;
/// let config = WebhookConfig::new("https://sms-gateway.internal/send").with_bearer_token("secret");
/// assert!(config.bearer_token.is_some());
/// ```
#[derive(Clone)]
#[non_exhaustive]
pub struct WebhookConfig {
    /// Where to POST.
    pub url: String,
    /// Sent as `Authorization: Bearer …` when set.
    pub bearer_token: Option<String>,
    /// Timeouts and retries.
    pub http: HttpClientConfig,
}

impl std::fmt::Debug for WebhookConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookConfig")
            .field("url", &messaging_model::redact_url(&self.url))
            .field(
                "bearer_token",
                &self.bearer_token.as_ref().map(|_| "<redacted>"),
            )
            .field("http", &self.http)
            .finish()
    }
}

impl WebhookConfig {
    /// A webhook at `url` with the default HTTP settings.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            bearer_token: None,
            http: HttpClientConfig::default(),
        }
    }

    /// Sets the bearer token.
    pub fn with_bearer_token(mut self, token: impl Into<String>) -> Self {
        self.bearer_token = Some(token.into());
        self
    }

    /// Sets timeouts and retries.
    pub fn with_http(mut self, http: HttpClientConfig) -> Self {
        self.http = http;
        self
    }
}

/// A webhook's URL, bearer token and HTTP client: what
/// [`WebhookSmsProvider`](super::WebhookSmsProvider) and
/// [`WebhookPushProvider`](super::WebhookPushProvider) send through.
#[derive(Clone)]
pub(crate) struct Webhook {
    url: Url,
    bearer_token: Option<String>,
    http: HttpSender,
}

impl Webhook {
    pub(crate) fn new(config: WebhookConfig) -> Result<Self, NotificationError> {
        Ok(Self {
            url: parse_url("webhook", &config.url)?,
            bearer_token: config.bearer_token,
            http: HttpSender::new("webhook", &config.http)?,
        })
    }

    /// POSTs `body` as JSON, with the bearer token when set and `reference`
    /// as the `Idempotency-Key` header when given; an `id` in a JSON answer is
    /// kept as the provider's message id.
    pub(crate) async fn post(
        &self,
        body: &Value,
        reference: Option<&str>,
    ) -> Result<SendReceipt, NotificationError> {
        let answer = self
            .http
            .send(|client| {
                let mut request = client.post(self.url.clone()).json(body);
                if let Some(token) = &self.bearer_token {
                    request = request.bearer_auth(token);
                }
                if let Some(reference) = reference {
                    request = request.header("Idempotency-Key", reference);
                }
                request
            })
            .await?;
        Ok(SendReceipt::new("webhook", answer_id(&answer.body)))
    }

    /// Formats the provider `name` around this webhook: `name { url, bearer_token,
    /// http }`, the token redacted as in [`WebhookConfig`]'s `Debug`.
    pub(crate) fn debug_as(&self, name: &str, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct(name)
            .field("url", &messaging_model::redact_url(self.url.as_str()))
            .field(
                "bearer_token",
                &self.bearer_token.as_ref().map(|_| "<redacted>"),
            )
            .field("http", &self.http)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::WebhookConfig;
    use crate::channel::{WebhookPushProvider, WebhookSmsProvider};

    /// The `Debug` output of `config` and of both providers built from it.
    fn shown_by_config_and_providers(config: &WebhookConfig) -> [String; 3] {
        let sms = WebhookSmsProvider::new(config.clone()).unwrap();
        let push = WebhookPushProvider::new(config.clone()).unwrap();
        [
            format!("{config:?}"),
            format!("{sms:?}"),
            format!("{push:?}"),
        ]
    }

    #[test]
    fn debug_output_never_shows_secrets_of_the_url() {
        // URL userinfo and query tokens, as some SMS gateways take them.
        let config = WebhookConfig::new("https://hooks:pa55word@127.0.0.1:9/send?token=t0ken&to=x");
        for shown in shown_by_config_and_providers(&config) {
            assert!(
                !shown.contains("pa55word") && !shown.contains("t0ken"),
                "{shown}"
            );
            assert!(shown.contains("127.0.0.1:9/send"), "{shown}");
        }
    }

    #[test]
    fn debug_output_never_shows_the_bearer_token() {
        let config =
            WebhookConfig::new("http://127.0.0.1:9/send").with_bearer_token("s3cret-token");
        for shown in shown_by_config_and_providers(&config) {
            assert!(!shown.contains("s3cret-token"), "{shown}");
            assert!(shown.contains("<redacted>"), "{shown}");
        }
    }
}
