//! The worker's configuration: a TOML file (`--config`), then environment
//! variables, then flags, each overriding the one before.
//!
//! See `config/messaging.example.toml` for every entry with its default.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use messaging_core::RetryPolicy;
use messaging_model::NotificationKind;
use notification::channel::{SmtpProvider, SmtpSecurity};
use notification::{InterruptedSendPolicy, NotificationConfig};
use serde::Deserialize;

use crate::exit::CliError;

/// Everything the worker needs.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct Config {
    /// The messaging backend.
    pub(crate) backend: BackendConfig,
    /// The notification store.
    pub(crate) database: DatabaseConfig,
    /// Subscriptions and the metrics endpoint.
    pub(crate) worker: WorkerConfig,
    /// Retries of failing messages.
    pub(crate) retry: RetryConfig,
    /// What a redelivered event does with a send that was interrupted.
    pub(crate) delivery: DeliveryConfig,
    /// The email channel; none: emails are refused.
    pub(crate) smtp: Option<SmtpConfig>,
    /// The SMS channel; none: SMS are refused.
    #[serde(deserialize_with = "with_default_provider")]
    pub(crate) sms: Option<SmsProvider>,
    /// The push channel; none: push notifications are refused.
    #[serde(deserialize_with = "with_default_provider")]
    pub(crate) push: Option<PushProvider>,
    /// `[sms]`'s `name`, `[[sms.fallback]]` and `[sms.breaker]`.
    #[serde(skip)]
    pub(crate) sms_chain: ProviderChain<SmsProvider>,
    /// `[push]`'s `name`, `[[push.fallback]]` and `[push.breaker]`.
    #[serde(skip)]
    pub(crate) push_chain: ProviderChain<PushProvider>,
    /// `[[limits]]`: rate and concurrency limits of the worker's subscriptions.
    pub(crate) limits: Vec<LimitConfig>,
    /// User preferences and one-click unsubscribe; none: everything is sent.
    pub(crate) preferences: Option<crate::preferences_config::PreferencesConfig>,
    /// Digest rules (`[[digests]]`).
    pub(crate) digests: Vec<crate::preferences_config::DigestConfig>,
}

/// One `[[limits]]` entry: a flow limit on some of the worker's topics,
/// enforced across every worker over the same Redis.
///
/// ```toml
/// [[limits]]
/// name = "sms-per-tenant"     # names its buckets (shared by every worker)
/// channel = "sms"             # the topic notification.sms; or topics = [...]
/// key = "tenant"              # one bucket per value of this metadata entry;
///                             # or key_field = "/tenant_id" (a payload field)
/// rate = "100/1s"             # or concurrency = 5
/// ```
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct LimitConfig {
    /// The limit's name.
    pub(crate) name: String,
    /// `email`, `sms` or `push`: the channel's request topic
    /// (`notification.email`, …).
    pub(crate) channel: Option<String>,
    /// Topics the limit applies to (each an event topic the worker reads).
    pub(crate) topics: Vec<String>,
    /// A metadata entry whose value names the bucket.
    pub(crate) key: Option<String>,
    /// A payload field (JSON pointer) whose value names the bucket.
    pub(crate) key_field: Option<String>,
    /// `PERMITS/INTERVAL`, e.g. `100/1s`.
    pub(crate) rate: Option<String>,
    /// Most messages of one bucket handled at once.
    pub(crate) concurrency: Option<u32>,
}

impl LimitConfig {
    /// The topics it applies to.
    pub(crate) fn topic_names(&self) -> Vec<String> {
        let mut topics = self.topics.clone();
        if let Some(channel) = &self.channel {
            topics.push(format!("notification.{channel}"));
        }
        topics
    }

    /// The checked limit, or what is wrong with it.
    pub(crate) fn to_limit(&self) -> Result<messaging_core::limit::FlowLimit, CliError> {
        use messaging_core::limit::{FlowLimit, LimitKey};
        let invalid = |reason: String| CliError::InvalidSetting {
            name: format!(
                "limits.{}",
                if self.name.is_empty() {
                    "name"
                } else {
                    &self.name
                }
            ),
            reason,
        };
        if let Some(channel) = &self.channel
            && !matches!(channel.as_str(), "email" | "sms" | "push")
        {
            return Err(invalid(format!(
                "channel {channel:?} is not one of email, sms, push"
            )));
        }
        if self.topic_names().is_empty() {
            return Err(invalid("names no channel and no topics".into()));
        }
        let key = match (&self.key, &self.key_field) {
            (Some(_), Some(_)) => return Err(invalid("has both key and key_field".into())),
            (Some(name), None) => LimitKey::metadata(name.clone()),
            (None, Some(pointer)) => {
                LimitKey::payload(pointer.clone()).map_err(|error| invalid(error.to_string()))?
            }
            (None, None) => LimitKey::Global,
        };
        let limit = match (&self.rate, self.concurrency) {
            (Some(rate), None) => {
                let rate = rate
                    .parse()
                    .map_err(|error: messaging_core::limit::InvalidLimit| {
                        invalid(error.to_string())
                    })?;
                FlowLimit::rate(self.name.clone(), key, rate)
            }
            (None, Some(max)) => FlowLimit::concurrency(self.name.clone(), key, max),
            _ => return Err(invalid("needs exactly one of rate and concurrency".into())),
        };
        limit.map_err(|error| invalid(error.to_string()))
    }
}

/// `[backend]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct BackendConfig {
    /// Redis URL (`redis+cluster://host1:port,host2:port` for a Redis Cluster);
    /// none: the in-memory backend (one process only).
    pub(crate) redis_url: Option<String>,
    /// Prefix of every Redis key.
    pub(crate) key_prefix: Option<String>,
}

/// `[database]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct DatabaseConfig {
    /// PostgreSQL URL; none: notifications are kept in memory.
    pub(crate) url: Option<String>,
    /// Schema of the notification tables.
    pub(crate) schema: Option<String>,
    /// Most connections in the pool.
    pub(crate) max_connections: Option<u32>,
}

/// `[worker]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct WorkerConfig {
    /// Consumer group of the worker's subscriptions (replicas share it).
    pub(crate) group: String,
    /// This replica's consumer name; keep it stable across restarts so a restarted
    /// replica finds its own unfinished deliveries first [default: HOSTNAME-PID].
    pub(crate) consumer: Option<String>,
    /// Handlers running at once per subscription.
    pub(crate) concurrency: usize,
    /// A delivery pending this long is taken over by another replica.
    #[serde(with = "duration_text")]
    pub(crate) visibility_timeout: Duration,
    /// How long shutdown waits for running handlers.
    #[serde(with = "duration_text")]
    pub(crate) shutdown_timeout: Duration,
    /// Address of the Prometheus endpoint; `""` turns it off.
    pub(crate) metrics_addr: Option<String>,
    /// How often the per-topic gauges are refreshed.
    #[serde(with = "duration_text")]
    pub(crate) stats_interval: Duration,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        Self {
            group: "notification".into(),
            consumer: None,
            concurrency: 8,
            visibility_timeout: Duration::from_secs(30),
            shutdown_timeout: Duration::from_secs(10),
            metrics_addr: Some("127.0.0.1:9464".into()),
            stats_interval: Duration::from_secs(5),
        }
    }
}

/// `[retry]`: the one retry layer of notification delivery.
///
/// Channels make one attempt and classify the failure; the worker's
/// subscriptions schedule the retry. The default schedule, 10 retries from 10 s
/// doubling up to 10 min (20 % jitter), spans about 40 to 50 minutes
/// ([`RetryConfig::span`]), enough to ride out an ordinary provider outage or a
/// relay restart, while a notification that is still failing after that reaches
/// the dead-letter queue (and its alert) the same hour rather than days later:
/// asynq (25 retries, exponential-ish) and Sidekiq (25 retries,
/// `count^4 + 15 + rand` s, about 20 days) suit jobs that stay useful for days;
/// a welcome email or a payment receipt does not.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct RetryConfig {
    /// Retries of the messages the worker itself publishes.
    pub(crate) max_retry: u32,
    /// Retries the worker's listeners allow every message they handle, whatever
    /// `max_retry` its publisher gave it (`SubscribeOptions::max_retries`).
    pub(crate) handler_max_retry: u32,
    /// Longest wait before a retry, a provider's `Retry-After` included.
    #[serde(with = "duration_text")]
    pub(crate) max_retry_delay: Duration,
    /// Delay before the first retry.
    #[serde(with = "duration_text")]
    pub(crate) initial_delay: Duration,
    /// Longest delay between two attempts.
    #[serde(with = "duration_text")]
    pub(crate) max_delay: Duration,
    /// Growth factor between attempts.
    pub(crate) multiplier: f64,
    /// Largest fraction taken off a delay at random.
    pub(crate) jitter: f64,
}

impl Default for RetryConfig {
    fn default() -> Self {
        Self {
            max_retry: messaging_model::DEFAULT_MAX_RETRY,
            handler_max_retry: 10,
            max_retry_delay: Duration::from_secs(3600),
            initial_delay: Duration::from_secs(10),
            max_delay: Duration::from_secs(600),
            multiplier: 2.0,
            jitter: 0.2,
        }
    }
}

impl RetryConfig {
    /// The policy the subscriptions use.
    pub(crate) fn policy(&self) -> RetryPolicy {
        RetryPolicy::exponential(self.initial_delay, self.max_delay)
            .with_multiplier(self.multiplier)
            .with_jitter(self.jitter)
    }

    /// The shortest and longest time from the first failure to the last retry
    /// of a message that keeps failing (`handler_max_retry` backoffs).
    #[cfg(test)]
    pub(crate) fn span(&self) -> (Duration, Duration) {
        let policy = self.policy();
        (1..=self.handler_max_retry)
            .map(|retry| policy.bounds(retry))
            .map(|(low, high)| {
                (
                    low.min(self.max_retry_delay),
                    high.min(self.max_retry_delay),
                )
            })
            .fold((Duration::ZERO, Duration::ZERO), |(low, high), (l, h)| {
                (low.saturating_add(l), high.saturating_add(h))
            })
    }
}

/// `[delivery]`: the [`InterruptedSendPolicy`] of each channel, applied when a
/// redelivered event finds its notification `sending` (the worker that was
/// sending it died after handing it over and before recording the outcome).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct DeliveryConfig {
    /// Emails: `resend` (default) or `mark_unknown`.
    pub(crate) interrupted_email: InterruptedSendPolicy,
    /// Text messages.
    pub(crate) interrupted_sms: InterruptedSendPolicy,
    /// Push notifications.
    pub(crate) interrupted_push: InterruptedSendPolicy,
}

impl DeliveryConfig {
    /// The service configuration these policies make.
    pub(crate) fn notification_config(&self) -> NotificationConfig {
        NotificationConfig::default()
            .with_interrupted_send(NotificationKind::Email, self.interrupted_email)
            .with_interrupted_send(NotificationKind::Sms, self.interrupted_sms)
            .with_interrupted_send(NotificationKind::Push, self.interrupted_push)
    }
}

/// The TOML words for [`SmtpSecurity`]: `tls`, `starttls`, `none` (the
/// library's `DangerousUnencrypted`; also accepted under that name).
pub(crate) fn parse_smtp_security(text: &str) -> Option<SmtpSecurity> {
    match text {
        "tls" => Some(SmtpSecurity::Tls),
        "starttls" => Some(SmtpSecurity::StartTls),
        "none" | "dangerous_unencrypted" => Some(SmtpSecurity::DangerousUnencrypted),
        _ => None,
    }
}

fn smtp_security<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<SmtpSecurity, D::Error> {
    let text = String::deserialize(deserializer)?;
    parse_smtp_security(&text).ok_or_else(|| {
        serde::de::Error::custom(format!("expected tls, starttls or none, got {text:?}"))
    })
}

fn smtp_provider<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<SmtpProvider, D::Error> {
    let text = String::deserialize(deserializer)?;
    SmtpProvider::parse(&text).ok_or_else(|| {
        serde::de::Error::custom(format!(
            "expected generic, ses, sendgrid, postmark or mailgun, got {text:?}"
        ))
    })
}

/// `[smtp]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SmtpConfig {
    /// Server host.
    pub(crate) host: String,
    /// Server port [default: 587, 465 with `tls`, 25 with `none`].
    pub(crate) port: Option<u16>,
    /// Connection security: `tls`, `starttls` (default) or `none`.
    #[serde(default, deserialize_with = "smtp_security")]
    pub(crate) security: SmtpSecurity,
    /// Login, if the server wants one.
    pub(crate) username: Option<String>,
    /// Password (prefer the `SMTP_PASSWORD` environment variable).
    pub(crate) password: Option<String>,
    /// The sender address.
    pub(crate) from: String,
    /// Timeout of one SMTP conversation.
    #[serde(default = "default_timeout", with = "duration_text")]
    pub(crate) timeout: Duration,
    /// The provider's name in the attempt log and metrics [default: `smtp`,
    /// fallbacks `smtp-2`, `smtp-3`, …].
    #[serde(default)]
    pub(crate) name: Option<String>,
    /// The relay, for the header carrying the notification id into its
    /// delivery events: `generic` (default, none), `ses`, `sendgrid`,
    /// `postmark` or `mailgun`.
    #[serde(default, deserialize_with = "smtp_provider")]
    pub(crate) provider: SmtpProvider,
    /// `[[smtp.fallback]]`: more relays, tried in order when the ones before
    /// did not accept a message (each with the settings of `[smtp]`).
    #[serde(default)]
    pub(crate) fallback: Vec<SmtpConfig>,
    /// `[smtp.breaker]`: the circuit breaker of each relay (only with fallbacks).
    #[serde(default)]
    pub(crate) breaker: BreakerConfig,
}

/// `[smtp.breaker]` (and `[sms.breaker]`, `[push.breaker]`): when a
/// provider is skipped (see `docs/delivery.md`).
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct BreakerConfig {
    /// Consecutive transient failures that open it.
    pub(crate) failure_threshold: u32,
    /// Also open when this share (0 to 1) of the last `rate_window` sends failed.
    pub(crate) failure_rate: Option<f64>,
    /// Sends the rate is measured over.
    pub(crate) rate_window: u32,
    /// How long an open breaker skips its relay before a probe.
    #[serde(with = "duration_text")]
    pub(crate) cool_down: Duration,
    /// Probes let through when half-open; that many successes close it.
    pub(crate) half_open_probes: u32,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        let d = notification::channel::CircuitBreakerConfig::default();
        Self {
            failure_threshold: d.failure_threshold,
            failure_rate: d.failure_rate,
            rate_window: d.rate_window,
            cool_down: d.cool_down,
            half_open_probes: d.half_open_probes,
        }
    }
}

impl BreakerConfig {
    /// The channel's breaker configuration.
    pub(crate) fn circuit_breaker(&self) -> notification::channel::CircuitBreakerConfig {
        let mut config = notification::channel::CircuitBreakerConfig::default()
            .with_failure_threshold(self.failure_threshold)
            .with_cool_down(self.cool_down)
            .with_half_open_probes(self.half_open_probes);
        if let Some(rate) = self.failure_rate {
            config = config.with_failure_rate(rate, self.rate_window);
        }
        config
    }
}

/// A JSON POST to `url` with an optional bearer token (SMS and push).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct WebhookProvider {
    /// The endpoint (or `SMS_URL` / `PUSH_URL`).
    pub(crate) url: Option<String>,
    /// Bearer token (prefer `SMS_API_KEY` / `PUSH_API_KEY`).
    pub(crate) api_key: Option<String>,
    /// Timeout of one request.
    #[serde(default = "default_timeout", with = "duration_text")]
    pub(crate) timeout: Duration,
}

/// Twilio's Messages API.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TwilioProvider {
    /// Account SID.
    pub(crate) account_sid: String,
    /// Auth token (prefer `SMS_AUTH_TOKEN`).
    pub(crate) auth_token: Option<String>,
    /// Sender number (E.164).
    pub(crate) from: String,
    /// API base URL, when not Twilio's own.
    pub(crate) url: Option<String>,
    /// Timeout of one request.
    #[serde(default = "default_timeout", with = "duration_text")]
    pub(crate) timeout: Duration,
}

/// Firebase Cloud Messaging HTTP v1.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FcmProvider {
    /// The Firebase project.
    pub(crate) project_id: String,
    /// The access token (prefer `PUSH_API_KEY`).
    pub(crate) api_key: Option<String>,
    /// API base URL, when not Google's own.
    pub(crate) url: Option<String>,
    /// Timeout of one request.
    #[serde(default = "default_timeout", with = "duration_text")]
    pub(crate) timeout: Duration,
}

/// `[sms]`: `provider = "webhook"` (the default) or `"twilio"`, with the
/// fields that provider takes (and no others).
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "provider", rename_all = "lowercase")]
pub(crate) enum SmsProvider {
    /// A webhook.
    Webhook(WebhookProvider),
    /// Twilio.
    Twilio(TwilioProvider),
}

/// `[push]`: `provider = "webhook"` (the default) or `"fcm"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "provider", rename_all = "lowercase")]
pub(crate) enum PushProvider {
    /// A webhook.
    Webhook(WebhookProvider),
    /// Firebase Cloud Messaging.
    Fcm(FcmProvider),
}

/// The keys of `[sms]` and `[push]` that are not the first provider's own:
/// read by [`ProviderChain::take`].
const CHAIN_KEYS: [&str; 3] = ["name", "fallback", "breaker"];

/// Deserializes a provider section whose `provider` may be left out (webhook),
/// leaving out the keys of its [`ProviderChain`].
fn with_default_provider<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::de::DeserializeOwned,
{
    let Some(table) = Option::<toml::Table>::deserialize(deserializer)? else {
        return Ok(None);
    };
    provider_from(table).map(Some)
}

fn provider_from<T: serde::de::DeserializeOwned, E: serde::de::Error>(
    mut table: toml::Table,
) -> Result<T, E> {
    for key in CHAIN_KEYS {
        table.remove(key);
    }
    table
        .entry("provider")
        .or_insert_with(|| toml::Value::String("webhook".into()));
    toml::Value::Table(table).try_into().map_err(E::custom)
}

/// The providers of `[sms]` or `[push]` after the first, in the style of
/// `[[smtp.fallback]]`:
///
/// ```toml
/// [sms]                       # the first provider, as before
/// name = "primary"            # its name in the attempt log and metrics [default: sms]
/// url = "https://sms-a.example.com/send"
///
/// [[sms.fallback]]            # tried in order; provider and fields as in [sms]
/// name = "backup"             # [default: sms-2, sms-3, …]
/// provider = "twilio"
/// account_sid = "AC…"
/// auth_token = "…"
/// from = "+15550100"
///
/// [sms.breaker]               # every provider's breaker, as [smtp.breaker]
/// failure_threshold = 5
/// ```
///
/// The environment (`SMS_URL`, `SMS_API_KEY`, …) sets the first provider's
/// fields only.
#[derive(Debug, Clone)]
pub(crate) struct ProviderChain<T> {
    /// The first provider's name.
    pub(crate) name: Option<String>,
    /// The fallbacks, in order, each with its name when given.
    pub(crate) fallback: Vec<(Option<String>, T)>,
    /// Every provider's circuit breaker (only with fallbacks).
    pub(crate) breaker: BreakerConfig,
}

impl<T> Default for ProviderChain<T> {
    fn default() -> Self {
        Self {
            name: None,
            fallback: Vec::new(),
            breaker: BreakerConfig::default(),
        }
    }
}

impl<T: serde::de::DeserializeOwned> ProviderChain<T> {
    /// Reads the chain of section `section` of a parsed file (the default
    /// when the section is absent).
    fn take(file: &toml::Table, section: &str) -> Result<Self, toml::de::Error> {
        use serde::de::Error as _;
        let error = |what: &str, reason: &dyn std::fmt::Display| {
            toml::de::Error::custom(format!("{section}.{what}: {reason}"))
        };
        let Some(table) = file.get(section).and_then(toml::Value::as_table) else {
            return Ok(Self::default());
        };
        let name = match table.get("name") {
            None => None,
            Some(toml::Value::String(name)) => Some(name.clone()),
            Some(_) => return Err(error("name", &"expected a string")),
        };
        let breaker = match table.get("breaker") {
            None => BreakerConfig::default(),
            Some(value) => value
                .clone()
                .try_into()
                .map_err(|e: toml::de::Error| error("breaker", &e))?,
        };
        let mut fallback = Vec::new();
        if let Some(entries) = table.get("fallback") {
            let Some(entries) = entries.as_array() else {
                return Err(error("fallback", &"expected [[fallback]] tables"));
            };
            for (i, entry) in entries.iter().enumerate() {
                let Some(entry) = entry.as_table() else {
                    return Err(error("fallback", &"expected [[fallback]] tables"));
                };
                if entry.contains_key("fallback") || entry.contains_key("breaker") {
                    return Err(error(
                        "fallback",
                        &format!(
                            "list every fallback and the breaker under [{section}], not under a fallback"
                        ),
                    ));
                }
                let name = match entry.get("name") {
                    None => None,
                    Some(toml::Value::String(name)) => Some(name.clone()),
                    Some(_) => return Err(error("fallback.name", &"expected a string")),
                };
                let provider = provider_from::<T, toml::de::Error>(entry.clone())
                    .map_err(|e| error(&format!("fallback[{i}]"), &e))?;
                fallback.push((name, provider));
            }
        }
        Ok(Self {
            name,
            fallback,
            breaker,
        })
    }
}

impl WebhookProvider {
    fn at(url: String) -> Self {
        Self {
            url: Some(url),
            api_key: None,
            timeout: default_timeout(),
        }
    }

    fn check(&self, section: &str) -> Result<(), CliError> {
        match self.url {
            None => Err(missing(section, "url", "webhook")),
            Some(_) => Ok(()),
        }
    }
}

fn missing(section: &str, what: &str, provider: &str) -> CliError {
    CliError::InvalidSetting {
        name: format!("{section}.{what}"),
        reason: format!("required by provider {provider}"),
    }
}

impl SmsProvider {
    fn url_mut(&mut self) -> &mut Option<String> {
        match self {
            Self::Webhook(webhook) => &mut webhook.url,
            Self::Twilio(twilio) => &mut twilio.url,
        }
    }

    /// Checks what the environment may still have supplied (`section`
    /// names it in the error).
    fn check(&self, section: &str) -> Result<(), CliError> {
        match self {
            Self::Webhook(webhook) => webhook.check(section),
            Self::Twilio(twilio) if twilio.auth_token.is_none() => {
                Err(missing(section, "auth_token", "twilio"))
            }
            Self::Twilio(_) => Ok(()),
        }
    }
}

impl PushProvider {
    fn url_mut(&mut self) -> &mut Option<String> {
        match self {
            Self::Webhook(webhook) => &mut webhook.url,
            Self::Fcm(fcm) => &mut fcm.url,
        }
    }

    /// Checks what the environment may still have supplied (`section`
    /// names it in the error).
    fn check(&self, section: &str) -> Result<(), CliError> {
        match self {
            Self::Webhook(webhook) => webhook.check(section),
            Self::Fcm(fcm) if fcm.api_key.is_none() => Err(missing(section, "api_key", "fcm")),
            Self::Fcm(_) => Ok(()),
        }
    }
}

fn default_timeout() -> Duration {
    Duration::from_secs(10)
}

impl Config {
    /// Reads a TOML file.
    pub(crate) fn from_file(path: &Path) -> Result<Self, CliError> {
        let text = std::fs::read_to_string(path).map_err(|source| CliError::ConfigRead {
            path: path.to_owned(),
            source,
        })?;
        Self::from_toml(&text).map_err(|source| CliError::ConfigParse {
            path: path.to_owned(),
            source: Box::new(source),
        })
    }

    /// The flow limits of the worker's subscription to `topic`, in the
    /// order of the file.
    pub(crate) fn limits_for(
        &self,
        topic: &str,
    ) -> Result<Vec<messaging_core::limit::FlowLimit>, CliError> {
        let mut limits = Vec::new();
        for entry in &self.limits {
            if entry.topic_names().iter().any(|name| name == topic) {
                limits.push(entry.to_limit()?);
            }
        }
        Ok(limits)
    }

    /// Checks every `[[limits]]` entry, and that each names only topics in
    /// `topics` (what the worker reads).
    pub(crate) fn check_limits(&self, topics: &[&str]) -> Result<(), CliError> {
        let mut names = std::collections::BTreeSet::new();
        for entry in &self.limits {
            entry.to_limit()?;
            if !names.insert(entry.name.as_str()) {
                return Err(CliError::InvalidSetting {
                    name: format!("limits.{}", entry.name),
                    reason: "two [[limits]] entries have this name".into(),
                });
            }
            for topic in entry.topic_names() {
                if !topics.contains(&topic.as_str()) {
                    return Err(CliError::InvalidSetting {
                        name: format!("limits.{}", entry.name),
                        reason: format!(
                            "topic {topic:?} is not one the worker reads ({})",
                            topics.join(", ")
                        ),
                    });
                }
            }
        }
        Ok(())
    }

    /// Parses TOML text.
    pub(crate) fn from_toml(text: &str) -> Result<Self, toml::de::Error> {
        let mut config: Self = toml::from_str(text)?;
        let file: toml::Table = toml::from_str(text)?;
        config.sms_chain = ProviderChain::take(&file, "sms")?;
        config.push_chain = ProviderChain::take(&file, "push")?;
        Ok(config)
    }

    /// Applies the environment variables listed in docs/operations.md, read through
    /// `lookup` (so tests need not touch the process environment).
    pub(crate) fn apply_env(
        &mut self,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<(), CliError> {
        let parse = |name: &str| -> Result<Option<u64>, CliError> {
            lookup(name)
                .map(|text| {
                    text.trim()
                        .parse::<u64>()
                        .map_err(|_| CliError::InvalidSetting {
                            name: name.to_owned(),
                            reason: format!("expected a whole number, got {text:?}"),
                        })
                })
                .transpose()
        };
        if let Some(preferences) = self.preferences.as_mut() {
            preferences.apply_env(&lookup);
        }
        if let Some(concurrency) = parse("MESSAGING_CONCURRENCY")? {
            self.worker.concurrency = usize::try_from(concurrency).unwrap_or(usize::MAX);
        }
        if let Some(max_retry) = parse("MESSAGING_MAX_RETRY")? {
            self.retry.max_retry = u32::try_from(max_retry).unwrap_or(u32::MAX);
        }
        if let Some(host) = lookup("SMTP_HOST") {
            let smtp = self.smtp.get_or_insert_with(|| SmtpConfig {
                host: host.clone(),
                port: None,
                security: SmtpSecurity::default(),
                username: None,
                password: None,
                from: "noreply@localhost".into(),
                timeout: default_timeout(),
                name: None,
                provider: SmtpProvider::Generic,
                fallback: Vec::new(),
                breaker: BreakerConfig::default(),
            });
            smtp.host = host;
        }
        if let Some(smtp) = self.smtp.as_mut() {
            if let Some(port) = parse("SMTP_PORT")? {
                smtp.port = Some(u16::try_from(port).map_err(|_| CliError::InvalidSetting {
                    name: "SMTP_PORT".into(),
                    reason: format!("{port} is not a port"),
                })?);
            }
            if let Some(security) = lookup("SMTP_SECURITY") {
                smtp.security =
                    parse_smtp_security(&security).ok_or_else(|| CliError::InvalidSetting {
                        name: "SMTP_SECURITY".into(),
                        reason: format!("expected tls, starttls or none, got {security:?}"),
                    })?;
            }
            if let Some(username) = lookup("SMTP_USERNAME") {
                smtp.username = Some(username);
            }
            if let Some(password) = lookup("SMTP_PASSWORD") {
                smtp.password = Some(password);
            }
            if let Some(from) = lookup("SMTP_FROM") {
                smtp.from = from;
            }
        }
        if let Some(url) = lookup("SMS_URL") {
            match self.sms.as_mut() {
                Some(provider) => *provider.url_mut() = Some(url),
                None => self.sms = Some(SmsProvider::Webhook(WebhookProvider::at(url))),
            }
        }
        match self.sms.as_mut() {
            Some(SmsProvider::Webhook(webhook)) => {
                if let Some(key) = lookup("SMS_API_KEY") {
                    webhook.api_key = Some(key);
                }
            }
            Some(SmsProvider::Twilio(twilio)) => {
                if let Some(token) = lookup("SMS_AUTH_TOKEN") {
                    twilio.auth_token = Some(token);
                }
            }
            None => {}
        }
        if let Some(url) = lookup("PUSH_URL") {
            match self.push.as_mut() {
                Some(provider) => *provider.url_mut() = Some(url),
                None => self.push = Some(PushProvider::Webhook(WebhookProvider::at(url))),
            }
        }
        if let Some(key) = lookup("PUSH_API_KEY") {
            match self.push.as_mut() {
                Some(PushProvider::Webhook(WebhookProvider { api_key, .. }))
                | Some(PushProvider::Fcm(FcmProvider { api_key, .. })) => *api_key = Some(key),
                None => {}
            }
        }
        Ok(())
    }

    /// The metrics address, `None` when turned off.
    pub(crate) fn metrics_addr(&self) -> Result<Option<SocketAddr>, CliError> {
        match self.worker.metrics_addr.as_deref() {
            None | Some("") => Ok(None),
            Some(text) => text
                .parse()
                .map(Some)
                .map_err(|_| CliError::InvalidSetting {
                    name: "worker.metrics_addr".into(),
                    reason: format!("expected HOST:PORT with an IP address, got {text:?}"),
                }),
        }
    }

    /// Checks the values serde cannot.
    pub(crate) fn check(&self) -> Result<(), CliError> {
        let invalid = |name: &str, reason: &str| CliError::InvalidSetting {
            name: name.to_owned(),
            reason: reason.to_owned(),
        };
        if self.worker.concurrency == 0 {
            return Err(invalid("worker.concurrency", "must be at least 1"));
        }
        if self.worker.consumer.as_deref().is_some_and(str::is_empty) {
            return Err(invalid("worker.consumer", "must not be empty"));
        }
        if self.worker.group.is_empty() {
            return Err(invalid("worker.group", "must not be empty"));
        }
        if self.worker.stats_interval.is_zero() {
            return Err(invalid("worker.stats_interval", "must be longer than zero"));
        }
        messaging_model::validate_max_retry(self.retry.max_retry)
            .map_err(|error| invalid("retry.max_retry", &error.to_string()))?;
        messaging_model::validate_max_retry(self.retry.handler_max_retry)
            .map_err(|error| invalid("retry.handler_max_retry", &error.to_string()))?;
        if self.retry.max_retry_delay > messaging_model::MAX_DELAY {
            return Err(invalid("retry.max_retry_delay", "must be at most 366 days"));
        }
        if let Some(smtp) = &self.smtp
            && smtp.fallback.iter().any(|f| !f.fallback.is_empty())
        {
            return Err(invalid(
                "smtp.fallback.fallback",
                "list every fallback under [smtp], not under another fallback",
            ));
        }
        if let Some(sms) = &self.sms {
            sms.check("sms")?;
        }
        for (_, sms) in &self.sms_chain.fallback {
            sms.check("sms.fallback")?;
        }
        if let Some(push) = &self.push {
            push.check("push")?;
        }
        for (_, push) in &self.push_chain.fallback {
            push.check("push.fallback")?;
        }
        self.metrics_addr()?;
        Ok(())
    }
}

/// Durations written for people: `"30s"`, `"5m"`, `"1h 30m"`, `"250ms"`.
mod duration_text {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer};

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Duration, D::Error> {
        let text = String::deserialize(deserializer)?;
        humantime::parse_duration(&text).map_err(|error| {
            serde::de::Error::custom(format!(
                "invalid duration {text:?} ({error}); write e.g. \"30s\", \"5m\", \"250ms\""
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    #[test]
    fn the_example_config_parses_and_checks() {
        let text = include_str!("../../../config/messaging.example.toml");
        let config = Config::from_toml(text).unwrap();
        config.check().unwrap();
        assert_eq!(config.worker.group, "notification");
        assert_eq!(config.retry.initial_delay, Duration::from_secs(10));
        assert_eq!(config.smtp.unwrap().port, Some(2525));
        assert_eq!(config.delivery, DeliveryConfig::default());
    }

    #[test]
    fn limits_are_read_checked_and_given_to_their_topics() {
        let config = Config::from_toml(
            "[[limits]]\nname = \"sms-per-tenant\"\nchannel = \"sms\"\nkey = \"tenant\"\nrate = \"100/1s\"\n\n\
             [[limits]]\nname = \"provider\"\nchannel = \"email\"\ntopics = [\"user.registered\"]\nconcurrency = 4\n",
        )
        .unwrap();
        let topics = ["notification.email", "notification.sms", "user.registered"];
        config.check_limits(&topics).unwrap();
        let sms = config.limits_for("notification.sms").unwrap();
        assert_eq!(sms.len(), 1);
        assert_eq!(sms[0].name(), "sms-per-tenant");
        assert_eq!(
            sms[0].kind(),
            messaging_core::limit::LimitKind::Rate("100/1s".parse().unwrap())
        );
        assert_eq!(
            config.limits_for("user.registered").unwrap()[0].name(),
            "provider"
        );
        assert_eq!(config.limits_for("notification.email").unwrap().len(), 1);
        assert!(config.limits_for("wallet.recharged").unwrap().is_empty());

        for (entry, says) in [
            (
                "name = \"x\"\nchannel = \"sms\"",
                "exactly one of rate and concurrency",
            ),
            (
                "name = \"x\"\nchannel = \"sms\"\nrate = \"1/s\"\nconcurrency = 1",
                "exactly one",
            ),
            (
                "name = \"x\"\nchannel = \"fax\"\nrate = \"1/s\"",
                "not one of email, sms, push",
            ),
            ("name = \"x\"\nrate = \"1/s\"", "no channel and no topics"),
            (
                "name = \"x\"\nchannel = \"sms\"\nrate = \"0/s\"",
                "invalid rate",
            ),
            (
                "name = \"x\"\nchannel = \"sms\"\nconcurrency = 0",
                "invalid concurrency",
            ),
            (
                "name = \"a b\"\nchannel = \"sms\"\nrate = \"1/s\"",
                "invalid limit name",
            ),
            (
                "name = \"x\"\nchannel = \"sms\"\nkey_field = \"tenant\"\nrate = \"1/s\"",
                "JSON pointer",
            ),
            (
                "name = \"x\"\nchannel = \"sms\"\nkey = \"t\"\nkey_field = \"/t\"\nrate = \"1/s\"",
                "both key and key_field",
            ),
            (
                "name = \"x\"\ntopics = [\"orders.placed\"]\nrate = \"1/s\"",
                "not one the worker reads",
            ),
        ] {
            let config = Config::from_toml(&format!("[[limits]]\n{entry}\n")).unwrap();
            let error = config.check_limits(&topics).unwrap_err().to_string();
            assert!(error.contains(says), "{entry:?}: {error}");
        }
        let twice = Config::from_toml(
            "[[limits]]\nname = \"x\"\nchannel = \"sms\"\nrate = \"1/s\"\n[[limits]]\nname = \"x\"\nchannel = \"email\"\nrate = \"1/s\"\n",
        )
        .unwrap();
        assert!(
            twice
                .check_limits(&topics)
                .unwrap_err()
                .to_string()
                .contains("two [[limits]]")
        );
        assert!(Config::from_toml("[[limits]]\nname = \"x\"\nburst = 3\n").is_err());
    }

    #[test]
    fn interrupted_send_policies_are_read_per_channel() {
        let config = Config::from_toml("[delivery]\ninterrupted_sms = \"mark_unknown\"\n").unwrap();
        let service = config.delivery.notification_config();
        assert_eq!(
            service.interrupted_send(NotificationKind::Sms),
            InterruptedSendPolicy::MarkUnknown
        );
        assert_eq!(
            service.interrupted_send(NotificationKind::Email),
            InterruptedSendPolicy::Resend
        );
        assert!(Config::from_toml("[delivery]\ninterrupted_email = \"maybe\"\n").is_err());
    }

    #[test]
    fn the_default_retry_schedule_rides_out_minutes_of_outage() {
        let retry = RetryConfig::default();
        let (shortest, longest) = retry.span();
        assert!(shortest > Duration::from_secs(10 * 60), "{shortest:?}");
        assert!(longest < Duration::from_secs(2 * 3600), "{longest:?}");
        assert_eq!(retry.max_retry_delay, Duration::from_secs(3600));
    }

    #[test]
    fn an_empty_file_gives_the_defaults() {
        let config = Config::from_toml("").unwrap();
        config.check().unwrap();
        assert_eq!(config.worker.concurrency, 8);
        assert_eq!(
            config.metrics_addr().unwrap(),
            Some("127.0.0.1:9464".parse().unwrap())
        );
        assert!(config.smtp.is_none());
    }

    #[test]
    fn bad_durations_and_unknown_keys_are_reported() {
        let error = Config::from_toml("[retry]\ninitial_delay = \"soon\"").unwrap_err();
        assert!(
            error.to_string().contains("invalid duration \"soon\""),
            "{error}"
        );
        let error = Config::from_toml("[worker]\nconcurency = 3").unwrap_err();
        assert!(error.to_string().contains("concurency"), "{error}");
    }

    #[test]
    fn providers_say_what_they_miss() {
        let twilio = Config::from_toml(
            "[sms]\nprovider = \"twilio\"\naccount_sid = \"AC1\"\nfrom = \"+14155550100\"",
        )
        .unwrap();
        let error = twilio.check().unwrap_err();
        assert!(error.to_string().contains("sms.auth_token"), "{error}");
        // A provider of the other channel, or a field of another provider,
        // is not a configuration at all.
        let fcm_sms = Config::from_toml("[sms]\nprovider = \"fcm\"").unwrap_err();
        assert!(
            fcm_sms.to_string().contains("unknown variant `fcm`"),
            "{fcm_sms}"
        );
        let stray = Config::from_toml("[sms]\nurl = \"http://x\"\nproject_id = \"p\"").unwrap_err();
        assert!(stray.to_string().contains("project_id"), "{stray}");
        let no_sid =
            Config::from_toml("[sms]\nprovider = \"twilio\"\nfrom = \"+14155550100\"").unwrap_err();
        assert!(no_sid.to_string().contains("account_sid"), "{no_sid}");
        let webhook = Config::from_toml("[push]\ntimeout = \"3s\"").unwrap();
        assert!(
            webhook
                .check()
                .unwrap_err()
                .to_string()
                .contains("push.url")
        );
        let fcm =
            Config::from_toml("[push]\nprovider = \"fcm\"\nproject_id = \"p\"\napi_key = \"t\"")
                .unwrap();
        fcm.check().unwrap();
    }

    #[test]
    fn environment_overrides_the_file() {
        let mut config = Config::from_toml("[smtp]\nhost = \"mail\"\nfrom = \"a@b.c\"").unwrap();
        let env: HashMap<&str, &str> = [
            ("SMTP_PORT", "2525"),
            ("SMTP_SECURITY", "none"),
            ("SMTP_PASSWORD", "secret"),
            ("MESSAGING_CONCURRENCY", "3"),
            ("SMS_URL", "http://127.0.0.1:9/sms"),
        ]
        .into();
        config
            .apply_env(|name| env.get(name).map(|v| v.to_string()))
            .unwrap();
        let smtp = config.smtp.as_ref().unwrap();
        assert_eq!(
            (smtp.host.as_str(), smtp.port, smtp.security),
            ("mail", Some(2525), SmtpSecurity::DangerousUnencrypted)
        );
        assert_eq!(smtp.password.as_deref(), Some("secret"));
        assert_eq!(config.worker.concurrency, 3);
        let Some(SmsProvider::Webhook(sms)) = config.sms.as_ref() else {
            panic!("SMS_URL alone makes a webhook provider: {:?}", config.sms)
        };
        assert_eq!(sms.url.as_deref(), Some("http://127.0.0.1:9/sms"));

        let error = config
            .apply_env(|name| (name == "MESSAGING_CONCURRENCY").then(|| "many".into()))
            .unwrap_err();
        assert!(error.to_string().contains("MESSAGING_CONCURRENCY"));
        let zero = Config::from_toml("[worker]\nconcurrency = 0").unwrap();
        assert!(zero.check().is_err());
    }

    #[test]
    fn smtp_fallbacks_and_the_breaker_are_read_and_one_relay_still_works() {
        let single = Config::from_toml("[smtp]\nhost = \"mail\"\nfrom = \"a@b.c\"").unwrap();
        let smtp = single.smtp.unwrap();
        assert!(smtp.fallback.is_empty());
        assert_eq!(smtp.breaker.failure_threshold, 5);

        let config = Config::from_toml(
            r#"
[smtp]
name = "relay-a"
host = "a.example"
from = "a@b.c"

[[smtp.fallback]]
name = "relay-b"
host = "b.example"
port = 2525
security = "none"
from = "a@b.c"

[smtp.breaker]
failure_threshold = 2
failure_rate = 0.5
rate_window = 10
cool_down = "1m"
half_open_probes = 2
"#,
        )
        .unwrap();
        config.check().unwrap();
        let smtp = config.smtp.unwrap();
        assert_eq!(smtp.name.as_deref(), Some("relay-a"));
        assert_eq!(smtp.fallback[0].name.as_deref(), Some("relay-b"));
        assert_eq!(smtp.fallback[0].port, Some(2525));
        let breaker = smtp.breaker.circuit_breaker();
        assert_eq!(
            (
                breaker.failure_threshold,
                breaker.failure_rate,
                breaker.rate_window
            ),
            (2, Some(0.5), 10)
        );
        assert_eq!(
            (breaker.cool_down, breaker.half_open_probes),
            (Duration::from_secs(60), 2)
        );

        let nested = Config::from_toml(
            "[smtp]\nhost = \"a\"\nfrom = \"a@b.c\"\n[[smtp.fallback]]\nhost = \"b\"\nfrom = \"a@b.c\"\n[[smtp.fallback.fallback]]\nhost = \"c\"\nfrom = \"a@b.c\"\n",
        )
        .unwrap();
        assert!(nested.check().is_err());
    }

    #[test]
    fn each_smtp_relay_names_its_provider_and_generic_is_the_default() {
        let config = Config::from_toml(
            "[smtp]\nhost = \"a\"\nfrom = \"a@b.c\"\nprovider = \"sendgrid\"\n[[smtp.fallback]]\nhost = \"b\"\nfrom = \"a@b.c\"\n[[smtp.fallback]]\nhost = \"c\"\nfrom = \"a@b.c\"\nprovider = \"ses\"\n",
        )
        .unwrap();
        config.check().unwrap();
        let smtp = config.smtp.unwrap();
        assert_eq!(
            [
                smtp.provider,
                smtp.fallback[0].provider,
                smtp.fallback[1].provider
            ],
            [
                SmtpProvider::SendGrid,
                SmtpProvider::Generic,
                SmtpProvider::Ses
            ]
        );
        let error =
            Config::from_toml("[smtp]\nhost = \"a\"\nfrom = \"a@b.c\"\nprovider = \"sparkpost\"\n")
                .unwrap_err();
        assert!(error.to_string().contains("sparkpost"), "{error}");
    }

    #[test]
    fn sms_and_push_fallbacks_and_their_breakers_are_read_and_one_provider_still_works() {
        let single =
            Config::from_toml("[sms]\nurl = \"http://a\"\n[push]\nurl = \"http://p\"\n").unwrap();
        single.check().unwrap();
        assert!(matches!(single.sms, Some(SmsProvider::Webhook(_))));
        assert!(single.sms_chain.fallback.is_empty());
        assert!(single.sms_chain.name.is_none());
        assert!(single.push_chain.fallback.is_empty());
        assert_eq!(single.sms_chain.breaker.failure_threshold, 5);

        let mut config = Config::from_toml(
            r#"
[sms]
name = "primary"
url = "http://a"

[[sms.fallback]]
name = "backup"
provider = "twilio"
account_sid = "AC1"
auth_token = "t"
from = "+15550100"

[[sms.fallback]]
url = "http://c"

[sms.breaker]
failure_threshold = 2
cool_down = "1m"

[push]
provider = "fcm"
project_id = "p"
api_key = "k"

[[push.fallback]]
url = "http://push-b"
"#,
        )
        .unwrap();
        config.check().unwrap();
        let Some(SmsProvider::Webhook(first)) = &config.sms else {
            panic!("{:?}", config.sms)
        };
        assert_eq!(first.url.as_deref(), Some("http://a"));
        assert_eq!(config.sms_chain.name.as_deref(), Some("primary"));
        let fallback = &config.sms_chain.fallback;
        assert_eq!(fallback.len(), 2);
        assert!(
            matches!(&fallback[0], (Some(name), SmsProvider::Twilio(t)) if name == "backup" && t.account_sid == "AC1")
        );
        assert!(
            matches!(&fallback[1], (None, SmsProvider::Webhook(w)) if w.url.as_deref() == Some("http://c"))
        );
        let breaker = config.sms_chain.breaker.circuit_breaker();
        assert_eq!(
            (breaker.failure_threshold, breaker.cool_down),
            (2, Duration::from_secs(60))
        );
        assert!(matches!(config.push, Some(PushProvider::Fcm(_))));
        assert!(matches!(
            &config.push_chain.fallback[..],
            [(None, PushProvider::Webhook(_))]
        ));
        // The environment sets the first provider only.
        config
            .apply_env(|name| (name == "SMS_URL").then(|| "http://env".to_owned()))
            .unwrap();
        let Some(SmsProvider::Webhook(first)) = &config.sms else {
            panic!("{:?}", config.sms)
        };
        assert_eq!(first.url.as_deref(), Some("http://env"));
        assert!(
            matches!(&config.sms_chain.fallback[1].1, SmsProvider::Webhook(w) if w.url.as_deref() == Some("http://c"))
        );
    }

    #[test]
    fn sms_and_push_fallbacks_say_what_is_wrong() {
        // A fallback misses what its provider needs: named as a fallback's.
        let no_url =
            Config::from_toml("[sms]\nurl = \"http://a\"\n[[sms.fallback]]\napi_key = \"k\"\n")
                .unwrap();
        let error = no_url.check().unwrap_err().to_string();
        assert!(error.contains("sms.fallback.url"), "{error}");
        let no_token = Config::from_toml(
            "[push]\nurl = \"http://a\"\n[[push.fallback]]\nprovider = \"fcm\"\nproject_id = \"p\"\n",
        )
        .unwrap();
        let error = no_token.check().unwrap_err().to_string();
        assert!(error.contains("push.fallback.api_key"), "{error}");
        // Unknown keys, bad breakers and nested fallbacks are parse errors.
        for text in [
            "[sms]\nurl = \"http://a\"\n[[sms.fallback]]\nurl = \"http://b\"\nbogus = 1\n",
            "[sms]\nurl = \"http://a\"\n[sms.breaker]\ncool_down = \"soon\"\n",
            "[sms]\nurl = \"http://a\"\n[sms.breaker]\nbogus = 1\n",
            "[sms]\nurl = \"http://a\"\n[[sms.fallback]]\nurl = \"http://b\"\n[[sms.fallback.fallback]]\nurl = \"http://c\"\n",
            "[sms]\nurl = \"http://a\"\nfallback = 3\n",
            "[push]\nurl = \"http://a\"\nname = 3\n",
            "[sms]\nurl = \"http://a\"\nbogus = 1\n",
        ] {
            assert!(Config::from_toml(text).is_err(), "{text}");
        }
    }
}
