//! SMS through HTTP providers: a Twilio-style API and a generic JSON webhook.

use async_trait::async_trait;
use reqwest::Url;
use serde::Deserialize;
use serde_json::json;
use tracing::{Instrument, Span, info_span};

use super::http::{HttpSender, parse_url};
use super::webhook::{Webhook, WebhookConfig};
use super::{HttpClientConfig, PhoneNumber, SendReceipt, SmsChannel, SmsMessage};
use crate::NotificationError;

/// Sends SMS by POSTing JSON to a webhook:
/// `{"to": "+14155550100", "text": "…", "reference": "…"}` with the reference
/// also sent as the `Idempotency-Key` header. Any 2xx is success; an `id` in a
/// JSON answer is kept as the provider's message id.
#[derive(Clone)]
pub struct WebhookSmsProvider {
    webhook: Webhook,
}

impl std::fmt::Debug for WebhookSmsProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.webhook.debug_as("WebhookSmsProvider", f)
    }
}

impl WebhookSmsProvider {
    /// A provider for this webhook.
    pub fn new(config: WebhookConfig) -> Result<Self, NotificationError> {
        Ok(Self {
            webhook: Webhook::new(config)?,
        })
    }
}

#[async_trait]
impl SmsChannel for WebhookSmsProvider {
    fn provider(&self) -> &str {
        "webhook"
    }

    async fn send_sms(&self, sms: &SmsMessage) -> Result<SendReceipt, NotificationError> {
        let body = json!({"to": sms.to.as_str(), "text": sms.text, "reference": sms.reference});
        self.webhook
            .post(&body, sms.reference.as_deref())
            .instrument(send_span("webhook", sms))
            .await
    }
}

/// A Twilio-style SMS account.
///
/// ```
/// use notification::channel::{PhoneNumber, TwilioConfig};
/// let config = TwilioConfig::new("AC123", "token", PhoneNumber::parse("+15005550006").unwrap())
///     .with_base_url("http://127.0.0.1:8080");
/// assert_eq!(config.base_url, "http://127.0.0.1:8080");
/// ```
#[derive(Clone)]
#[non_exhaustive]
pub struct TwilioConfig {
    /// The API's base URL (`https://api.twilio.com`).
    pub base_url: String,
    /// The account SID: the user name of basic auth and part of the path.
    pub account_sid: String,
    /// The auth token: the password of basic auth.
    pub auth_token: String,
    /// The sending number.
    pub from: PhoneNumber,
    /// Timeouts and retries.
    pub http: HttpClientConfig,
}

impl std::fmt::Debug for TwilioConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TwilioConfig")
            .field("base_url", &self.base_url)
            .field("account_sid", &self.account_sid)
            .field("auth_token", &"<redacted>")
            .field("from", &self.from)
            .field("http", &self.http)
            .finish()
    }
}

impl TwilioConfig {
    /// An account at the public API.
    pub fn new(
        account_sid: impl Into<String>,
        auth_token: impl Into<String>,
        from: PhoneNumber,
    ) -> Self {
        Self {
            base_url: "https://api.twilio.com".to_owned(),
            account_sid: account_sid.into(),
            auth_token: auth_token.into(),
            from,
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

/// Sends SMS with a form POST to
/// `{base}/2010-04-01/Accounts/{sid}/Messages.json` (`To`, `From`, `Body`),
/// authenticated with HTTP basic auth (account SID, auth token). The answer's
/// `sid` is kept as the provider's message id.
#[derive(Debug, Clone)]
pub struct TwilioSmsProvider {
    url: Url,
    account_sid: String,
    auth_token: String,
    from: PhoneNumber,
    http: HttpSender,
}

#[derive(Deserialize)]
struct TwilioAnswer {
    sid: Option<String>,
}

impl TwilioSmsProvider {
    /// A provider for this account.
    pub fn new(config: TwilioConfig) -> Result<Self, NotificationError> {
        let sid = &config.account_sid;
        if sid.is_empty() || !sid.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(NotificationError::Config {
                channel: "twilio",
                reason: "the account SID must be letters and digits".to_owned(),
            });
        }
        let base = config.base_url.trim_end_matches('/');
        let url = parse_url(
            "twilio",
            &format!("{base}/2010-04-01/Accounts/{sid}/Messages.json"),
        )?;
        Ok(Self {
            url,
            account_sid: config.account_sid,
            auth_token: config.auth_token,
            from: config.from,
            http: HttpSender::new("twilio", &config.http)?,
        })
    }
}

#[async_trait]
impl SmsChannel for TwilioSmsProvider {
    fn provider(&self) -> &str {
        "twilio"
    }

    async fn send_sms(&self, sms: &SmsMessage) -> Result<SendReceipt, NotificationError> {
        let form = [
            ("To", sms.to.as_str()),
            ("From", self.from.as_str()),
            ("Body", sms.text.as_str()),
        ];
        let answer = self
            .http
            .send(|client| {
                client
                    .post(self.url.clone())
                    .basic_auth(&self.account_sid, Some(&self.auth_token))
                    .form(&form)
            })
            .instrument(send_span("twilio", sms))
            .await?;
        let sid = serde_json::from_str::<TwilioAnswer>(&answer.body)
            .ok()
            .and_then(|answer| answer.sid);
        Ok(SendReceipt::new("twilio", sid))
    }
}

/// The span of one SMS send through `provider`.
fn send_span(provider: &'static str, sms: &SmsMessage) -> Span {
    info_span!(
        "sms_send",
        provider,
        reference = sms.reference.as_deref().unwrap_or("")
    )
}
