//! Email over SMTP with lettre: async, pooled connections with `TCP_NODELAY`
//! (see [`smtp_pool`] for why the pool is the channel's own).

use std::time::Duration;

use async_trait::async_trait;
use lettre::Message;
use lettre::message::{Mailbox, MultiPart, SinglePart, header::ContentType};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::TlsParameters;
use lettre::transport::smtp::extension::ClientId;
use tracing::{Instrument, debug, info_span, warn};

use super::{EmailAddress, EmailChannel, EmailMessage, ProviderRetryPolicy, SendReceipt};
use crate::NotificationError;
use crate::template::single_line;

#[path = "smtp_pool.rs"]
mod smtp_pool;

use smtp_pool::{Connector, Limits, Protection, SmtpFailure, SmtpPool};

/// How the SMTP connection is protected. The unprotected choice says so in its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum SmtpSecurity {
    /// TLS from the first byte ("SMTPS", port 465 by default).
    Tls,
    /// Plain connection upgraded with STARTTLS, which the server must offer
    /// (port 587 by default). The default.
    #[default]
    StartTls,
    /// No encryption at all (port 25 by default): credentials and mail travel in
    /// clear. For a local relay or a test server only.
    DangerousUnencrypted,
}

impl SmtpSecurity {
    /// The port used when none is set: 465, 587 or 25.
    ///
    /// ```
    /// use notification::channel::SmtpSecurity;
    /// assert_eq!(SmtpSecurity::Tls.default_port(), 465);
    /// assert_eq!(SmtpSecurity::StartTls.default_port(), 587);
    /// assert_eq!(SmtpSecurity::DangerousUnencrypted.default_port(), 25);
    /// ```
    pub fn default_port(self) -> u16 {
        match self {
            Self::Tls => 465,
            Self::StartTls => 587,
            Self::DangerousUnencrypted => 25,
        }
    }
}

/// The relay an SMTP channel sends through, for one thing only: the metadata
/// header that carries the notification id (the send's reference) into the
/// relay's delivery events. Relays other than Mailgun name their own message
/// id in their events, not the `Message-ID` header the channel sets, so
/// without this their events match no notification.
///
/// | provider | header | where its events carry it |
/// | --- | --- | --- |
/// | `Generic` (default) | none | — |
/// | `SendGrid` | `X-SMTPAPI: {"unique_args":{"notification_id":"…"}}` | a top-level `notification_id` field of each event |
/// | `Postmark` | `X-PM-Metadata-notification_id: …` | `Metadata.notification_id` |
/// | `Ses` | `X-SES-MESSAGE-TAGS: notification_id=…` | `mail.tags.notification_id` (event publishing, with a configuration set) |
/// | `Mailgun` | `X-Mailgun-Variables: {"notification_id":"…"}` | `event-data.user-variables.notification_id` |
///
/// ```
/// use notification::channel::SmtpProvider;
/// let id = "0190a5c2-7b3e-7c41-9d2a-5f1e8b6c4d3a";
/// assert_eq!(
///     SmtpProvider::Postmark.metadata_header(id),
///     Some(("X-PM-Metadata-notification_id", id.to_owned()))
/// );
/// assert_eq!(SmtpProvider::parse("sendgrid"), Some(SmtpProvider::SendGrid));
/// assert_eq!(SmtpProvider::Generic.metadata_header(id), None);
/// // Only a UUID goes into a header: never arbitrary text.
/// assert_eq!(SmtpProvider::Ses.metadata_header("a\r\nBcc: x@y"), None);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum SmtpProvider {
    /// Any relay: no metadata header.
    #[default]
    Generic,
    /// Amazon SES's SMTP interface: a message tag; and the receipt's
    /// provider message id is SES's own, read from its `250 Ok <id>` reply
    /// (the id every SES event names), the `Message-ID` only when the reply
    /// carries none.
    Ses,
    /// SendGrid's SMTP relay: a unique argument.
    SendGrid,
    /// Postmark's SMTP service: a metadata field.
    Postmark,
    /// Mailgun's SMTP relay: a user variable (its events also carry the
    /// `Message-ID`).
    Mailgun,
}

/// The metadata key the notification id is sent under, whatever the relay:
/// what `notification-delivery-events` reads back.
pub const NOTIFICATION_ID_METADATA_KEY: &str = "notification_id";

impl SmtpProvider {
    /// Every provider.
    pub const ALL: [Self; 5] = [
        Self::Generic,
        Self::Ses,
        Self::SendGrid,
        Self::Postmark,
        Self::Mailgun,
    ];

    /// The lowercase name: `generic`, `ses`, `sendgrid`, `postmark`, `mailgun`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Generic => "generic",
            Self::Ses => "ses",
            Self::SendGrid => "sendgrid",
            Self::Postmark => "postmark",
            Self::Mailgun => "mailgun",
        }
    }

    /// The provider named `name` ([`as_str`](Self::as_str)'s output), if any.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.as_str() == name)
    }

    /// The header (name, value) carrying `notification_id` to this relay;
    /// `None` for [`Generic`](Self::Generic), and for a `notification_id`
    /// that is not a UUID (so no text of unknown shape reaches a header).
    pub fn metadata_header(self, notification_id: &str) -> Option<(&'static str, String)> {
        let id = uuid::Uuid::parse_str(notification_id).ok()?.hyphenated();
        let key = NOTIFICATION_ID_METADATA_KEY;
        match self {
            Self::Generic => None,
            Self::Ses => Some(("X-SES-MESSAGE-TAGS", format!("{key}={id}"))),
            Self::SendGrid => Some((
                "X-SMTPAPI",
                format!(r#"{{"unique_args":{{"{key}":"{id}"}}}}"#),
            )),
            Self::Postmark => Some(("X-PM-Metadata-notification_id", id.to_string())),
            Self::Mailgun => Some(("X-Mailgun-Variables", format!(r#"{{"{key}":"{id}"}}"#))),
        }
    }
}

/// SMTP user name and password.
#[derive(Clone, PartialEq, Eq)]
pub struct SmtpCredentials {
    /// The user name.
    pub username: String,
    /// The password.
    pub password: String,
}

impl std::fmt::Debug for SmtpCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpCredentials")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// Where and how to send email.
///
/// ```
/// use std::time::Duration;
/// use notification::channel::{SmtpConfig, SmtpSecurity};
///
/// let config = SmtpConfig::starttls("smtp.example.com")
///     .with_credentials("mailer", "secret")
///     .with_from("noreply@example.com", Some("Example"))
///     .with_pool_max_size(4)
///     .with_timeout(Duration::from_secs(10));
/// assert_eq!(config.security, SmtpSecurity::StartTls);
/// // For a local test server only: the risk is in the name.
/// let local = SmtpConfig::dangerous_unencrypted("127.0.0.1").with_port(2525);
/// assert_eq!(local.port, Some(2525));
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct SmtpConfig {
    /// The server's host name (also the name its TLS certificate must carry).
    pub host: String,
    /// The port; the security mode's usual port when `None`.
    pub port: Option<u16>,
    /// How the connection is protected.
    pub security: SmtpSecurity,
    /// Credentials, when the server wants them.
    pub credentials: Option<SmtpCredentials>,
    /// The sender address.
    pub from: String,
    /// The sender's display name.
    pub from_name: Option<String>,
    /// The name sent in EHLO; the machine's host name when `None`.
    pub hello_name: Option<String>,
    /// How long each step may take: connecting, the TLS handshake, the
    /// greeting, each SMTP command and the message data.
    pub timeout: Duration,
    /// Most connections open at once: a send waits while this many are busy.
    pub pool_max_size: u32,
    /// Idle connections kept ready.
    pub pool_min_idle: u32,
    /// How long an idle connection is kept.
    pub pool_idle_timeout: Duration,
    /// In-place retries of temporary failures (4xx replies, timeouts, lost
    /// connections) within one send: off by default, the messaging runtime
    /// schedules retries (see [`ProviderRetryPolicy`]).
    pub retry: ProviderRetryPolicy,
    /// The relay, for the metadata header carrying the notification id
    /// ([`SmtpProvider`]); [`SmtpProvider::Generic`] (none) by default.
    pub provider: SmtpProvider,
}

impl Default for SmtpConfig {
    /// `localhost` with STARTTLS, sender `noreply@localhost`, 30 s timeout, 10 pooled connections.
    fn default() -> Self {
        Self {
            host: "localhost".to_owned(),
            port: None,
            security: SmtpSecurity::StartTls,
            credentials: None,
            from: "noreply@localhost".to_owned(),
            from_name: None,
            hello_name: None,
            timeout: Duration::from_secs(30),
            pool_max_size: 10,
            pool_min_idle: 0,
            pool_idle_timeout: Duration::from_secs(60),
            retry: ProviderRetryPolicy::default(),
            provider: SmtpProvider::Generic,
        }
    }
}

impl SmtpConfig {
    /// A server reached with TLS from the start (port 465).
    pub fn tls(host: impl Into<String>) -> Self {
        Self::default()
            .with_host(host)
            .with_security(SmtpSecurity::Tls)
    }

    /// A server reached with STARTTLS (port 587).
    pub fn starttls(host: impl Into<String>) -> Self {
        Self::default()
            .with_host(host)
            .with_security(SmtpSecurity::StartTls)
    }

    /// A server reached without any encryption (port 25): local relays and tests only.
    pub fn dangerous_unencrypted(host: impl Into<String>) -> Self {
        Self::default()
            .with_host(host)
            .with_security(SmtpSecurity::DangerousUnencrypted)
    }

    /// Sets the host.
    pub fn with_host(mut self, host: impl Into<String>) -> Self {
        self.host = host.into();
        self
    }

    /// Sets the port.
    pub fn with_port(mut self, port: u16) -> Self {
        self.port = Some(port);
        self
    }

    /// Sets the security mode.
    pub fn with_security(mut self, security: SmtpSecurity) -> Self {
        self.security = security;
        self
    }

    /// Sets the credentials.
    pub fn with_credentials(
        mut self,
        username: impl Into<String>,
        password: impl Into<String>,
    ) -> Self {
        self.credentials = Some(SmtpCredentials {
            username: username.into(),
            password: password.into(),
        });
        self
    }

    /// Sets the sender.
    pub fn with_from(mut self, address: impl Into<String>, name: Option<&str>) -> Self {
        self.from = address.into();
        self.from_name = name.map(str::to_owned);
        self
    }

    /// Sets the EHLO name.
    pub fn with_hello_name(mut self, name: impl Into<String>) -> Self {
        self.hello_name = Some(name.into());
        self
    }

    /// Sets the per-command timeout.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sets the most pooled connections.
    pub fn with_pool_max_size(mut self, size: u32) -> Self {
        self.pool_max_size = size;
        self
    }

    /// Sets the idle connections kept ready.
    pub fn with_pool_min_idle(mut self, min_idle: u32) -> Self {
        self.pool_min_idle = min_idle;
        self
    }

    /// Sets the retries within one send.
    pub fn with_retry(mut self, retry: ProviderRetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// Sets the relay, for its notification id metadata header.
    pub fn with_provider(mut self, provider: SmtpProvider) -> Self {
        self.provider = provider;
        self
    }

    /// Sets how long an idle connection is kept.
    pub fn with_pool_idle_timeout(mut self, timeout: Duration) -> Self {
        self.pool_idle_timeout = timeout;
        self
    }
}

/// Sends email through an SMTP server over a pool of connections.
///
/// Each connection is a TCP stream with `TCP_NODELAY` (lettre's own transport
/// leaves Nagle on, which costs a server's delayed ACK, up to 40 ms, per
/// message). At most [`SmtpConfig::pool_max_size`] connections are open; a
/// refused transaction is reset with `RSET` and its connection reused; a pooled
/// connection found broken at `MAIL FROM` is dropped and the send goes on over
/// a fresh one.
///
/// ```no_run
/// use notification::channel::{EmailAddress, EmailChannel, EmailMessage, SmtpConfig, SmtpEmailChannel};
///
/// # async fn run() -> Result<(), notification::NotificationError> {
/// let channel = SmtpEmailChannel::new(SmtpConfig::starttls("smtp.example.com").with_from("noreply@example.com", None))?;
/// let email = EmailMessage::new(EmailAddress::parse("ann@example.com")?, "Hello").with_text("Hi Ann");
/// channel.send_email(&email).await?;
/// # Ok(()) }
/// ```
pub struct SmtpEmailChannel {
    pool: SmtpPool,
    from: Mailbox,
    /// The right-hand side of the `Message-ID`s the channel sets: the
    /// sender's domain, in ASCII.
    message_id_domain: String,
    host: String,
    retry: ProviderRetryPolicy,
    provider: SmtpProvider,
}

impl std::fmt::Debug for SmtpEmailChannel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpEmailChannel")
            .field("host", &self.host)
            .field("from", &self.from.email.to_string())
            .finish_non_exhaustive()
    }
}

fn config_error(reason: impl std::fmt::Display) -> NotificationError {
    NotificationError::Config {
        channel: "smtp",
        reason: reason.to_string(),
    }
}

impl SmtpEmailChannel {
    /// Builds the channel. No connection is opened until the first send.
    pub fn new(config: SmtpConfig) -> Result<Self, NotificationError> {
        let from = EmailAddress::parse(&config.from)?;
        let from_name = config.from_name.as_deref().map(single_line);
        let from = Mailbox::new(from_name, from.address().parse().map_err(config_error)?);
        let tls = || TlsParameters::new(config.host.clone()).map_err(config_error);
        let protection = match config.security {
            SmtpSecurity::Tls => Protection::Tls(tls()?),
            SmtpSecurity::StartTls => Protection::StartTls(tls()?),
            SmtpSecurity::DangerousUnencrypted => Protection::None,
        };
        let connector = Connector {
            host: config.host.clone(),
            port: config.port.unwrap_or(config.security.default_port()),
            protection,
            hello: config.hello_name.map(ClientId::Domain).unwrap_or_default(),
            credentials: config
                .credentials
                .map(|credentials| Credentials::new(credentials.username, credentials.password)),
            timeout: config.timeout,
        };
        let limits = Limits {
            max_size: usize::try_from(config.pool_max_size).unwrap_or(usize::MAX),
            min_idle: usize::try_from(config.pool_min_idle).unwrap_or(usize::MAX),
            idle_timeout: config.pool_idle_timeout,
        };
        let message_id_domain = idna::domain_to_ascii(from.email.domain())
            .ok()
            .filter(|domain| !domain.is_empty())
            .unwrap_or_else(|| "localhost".to_owned());
        Ok(Self {
            pool: SmtpPool::new(connector, limits),
            from,
            message_id_domain,
            host: config.host,
            retry: config.retry,
            provider: config.provider,
        })
    }

    fn build(&self, email: &EmailMessage) -> Result<Message, NotificationError> {
        let to = Mailbox::new(
            email.to.name().map(single_line),
            email
                .to
                .address()
                .parse()
                .map_err(|error: lettre::address::AddressError| {
                    NotificationError::InvalidEmailAddress {
                        value: email.to.address().to_owned(),
                        reason: error.to_string(),
                    }
                })?,
        );
        let mut builder = Message::builder()
            .from(self.from.clone())
            .to(to)
            // Our own, unique id: the receipt's provider message id, which
            // relays' delivery events name (see docs/delivery.md).
            .message_id(Some(format!(
                "<{}@{}>",
                uuid::Uuid::now_v7().simple(),
                self.message_id_domain
            )))
            // One line: a CR or LF in the subject can never start a header.
            .subject(single_line(&email.subject));
        if let Some((name, value)) = email
            .reference
            .as_deref()
            .and_then(|reference| self.provider.metadata_header(reference))
        {
            use lettre::message::header::{HeaderName, HeaderValue};
            // The notification id, where the relay's events carry it back.
            builder = builder.raw_header(HeaderValue::new(
                HeaderName::new_from_ascii_str(name),
                value,
            ));
        }
        if let Some(links) = &email.list_unsubscribe {
            use lettre::message::header::{HeaderName, HeaderValue};
            // The URLs were checked by ListUnsubscribe::new: no CR, LF or spaces.
            builder = builder
                .raw_header(HeaderValue::new(
                    HeaderName::new_from_ascii_str("List-Unsubscribe"),
                    links.header_value(),
                ))
                .raw_header(HeaderValue::new(
                    HeaderName::new_from_ascii_str("List-Unsubscribe-Post"),
                    "List-Unsubscribe=One-Click".to_owned(),
                ));
        }
        let built = match (&email.text, &email.html) {
            (Some(text), Some(html)) => builder.multipart(MultiPart::alternative_plain_html(
                text.clone(),
                html.clone(),
            )),
            (Some(text), None) => builder.singlepart(
                SinglePart::builder()
                    .header(ContentType::TEXT_PLAIN)
                    .body(text.clone()),
            ),
            (None, Some(html)) => builder.singlepart(
                SinglePart::builder()
                    .header(ContentType::TEXT_HTML)
                    .body(html.clone()),
            ),
            (None, None) => unreachable!("checked above"),
        };
        built.map_err(|error| {
            NotificationError::invalid_request(format!("the email could not be built: {error}"))
        })
    }
}

/// SES's message id in the text of its final `250` reply, `Ok <id>` (an
/// enhanced status code before it is skipped); `None` for any other reply
/// (`Ok: queued as …` is not SES's form, and its words are no id).
///
/// ```text
/// 250 Ok 0100018c3a6f1e2d-4c5b9a8f-7e6d-4c5b-9a21-7e6d5c4b3a21-000000
/// ```
fn ses_message_id(reply: Option<&str>) -> Option<String> {
    let mut words = reply?.split_whitespace();
    let mut word = words.next()?;
    if word.split('.').count() == 3 && word.split('.').all(|part| part.parse::<u16>().is_ok()) {
        word = words.next()?;
    }
    if !word.eq_ignore_ascii_case("ok") {
        return None;
    }
    let id = words.next()?;
    (id.len() >= 8
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && id.bytes().any(|b| b.is_ascii_digit()))
    .then(|| id.to_owned())
}

/// lettre's `is_transient()` covers SMTP 4xx replies only: timeouts and
/// connection or network failures are told apart with other checks, and are
/// temporary too. SMTP 5xx replies, TLS failures (a certificate or
/// configuration problem) and client errors are permanent.
pub(crate) fn classify(error: lettre::transport::smtp::Error) -> NotificationError {
    let code = error
        .status()
        .and_then(|code| code.to_string().parse::<u16>().ok());
    let transient = if error.is_permanent() {
        false
    } else if error.is_transient() || error.is_timeout() {
        true
    } else {
        // What is left: connection and network failures, unparsable replies
        // (a broken connection), a transport shut down: all worth a retry.
        !(error.is_client() || error.is_tls())
    };
    NotificationError::Smtp {
        code,
        transient,
        source: Box::new(error),
    }
}

/// True when the source of an SMTP error proves the message was not taken:
/// the connection could not be opened, a step before the message data timed
/// out, or the message needs an extension the server lacks. A broken
/// connection or a timeout once the data was sent proves nothing.
pub(crate) fn smtp_source_proves_unsent(source: &(dyn std::error::Error + 'static)) -> bool {
    match source.downcast_ref::<SmtpFailure>() {
        Some(SmtpFailure::Connect { .. } | SmtpFailure::Unsupported(_)) => true,
        Some(SmtpFailure::Timeout { step, .. }) => *step != smtp_pool::MESSAGE_DATA_STEP,
        Some(SmtpFailure::Lettre(_)) | None => false,
    }
}

/// [`classify`] for lettre's errors; timeouts and failures to connect are
/// temporary; a message the server cannot take (no SMTPUTF8 or 8BITMIME) is not.
fn classify_failure(failure: SmtpFailure) -> NotificationError {
    let transient = match &failure {
        SmtpFailure::Lettre(_) => {
            let SmtpFailure::Lettre(error) = failure else {
                unreachable!("matched above")
            };
            return classify(error);
        }
        SmtpFailure::Connect { .. } | SmtpFailure::Timeout { .. } => true,
        SmtpFailure::Unsupported(_) => false,
    };
    NotificationError::Smtp {
        code: None,
        transient,
        source: Box::new(failure),
    }
}

#[async_trait]
impl EmailChannel for SmtpEmailChannel {
    fn provider(&self) -> &str {
        "smtp"
    }

    async fn send_email(&self, email: &EmailMessage) -> Result<SendReceipt, NotificationError> {
        let message = self.build(email)?;
        let message_id = message
            .headers()
            .get_raw("Message-ID")
            .map(|id| id.trim_matches(['<', '>']).to_owned());
        let envelope = message.envelope().clone();
        let formatted = message.formatted();
        let span = info_span!("smtp_send", host = %self.host, reference = email.reference.as_deref().unwrap_or(""));
        async {
            let mut attempt = 1;
            loop {
                match self
                    .pool
                    .send(&envelope, &formatted)
                    .await
                    .map_err(classify_failure)
                {
                    Ok(response) => {
                        // The relay's own id, when its reply names one
                        // (`250 2.0.0 Ok: queued as 4Xyz`): logged, for
                        // tracing a message through the relay's logs.
                        debug!(
                            code = %response.code(),
                            reply = response.first_line().unwrap_or(""),
                            message_id = message_id.as_deref().unwrap_or(""),
                            attempt,
                            "accepted by the SMTP server"
                        );
                        let recorded = match self.provider {
                            // SES names the message by its own id in every
                            // event (identity notifications and event
                            // publishing alike): the one its reply carries.
                            SmtpProvider::Ses => {
                                ses_message_id(response.first_line()).or_else(|| {
                                    warn!(
                                        reply = response.first_line().unwrap_or(""),
                                        "no SES message id in the reply; recording the Message-ID header"
                                    );
                                    message_id.clone()
                                })
                            }
                            _ => message_id.clone(),
                        };
                        return Ok(SendReceipt::new("smtp", recorded));
                    }
                    Err(error) if error.is_transient() && attempt < self.retry.max_attempts => {
                        let wait = self.retry.backoff(attempt);
                        warn!(%error, attempt, ?wait, "temporary SMTP failure; retrying");
                        tokio::time::sleep(wait).await;
                        attempt += 1;
                    }
                    Err(error) => return Err(error),
                }
            }
        }
        .instrument(span)
        .await
    }
}

#[cfg(test)]
mod tests {
    //! The pool's behaviour against a real SMTP server on loopback (smtp-sink):
    //! what the integration tests in `tests/email.rs` cannot see from outside.

    use std::net::SocketAddr;
    use std::sync::{Arc, Mutex};

    use smtp_sink::{Reply, SmtpCommand, SmtpSink};

    use super::*;

    const WAIT: Duration = Duration::from_secs(10);

    fn config(port: u16) -> SmtpConfig {
        SmtpConfig::dangerous_unencrypted("127.0.0.1")
            .with_port(port)
            .with_from("noreply@example.com", None)
            .with_hello_name("tests.localhost")
            .with_timeout(Duration::from_secs(5))
            .with_retry(ProviderRetryPolicy::none())
    }

    fn email(i: usize) -> EmailMessage {
        EmailMessage::new(
            EmailAddress::parse(&format!("user{i}@example.com")).unwrap(),
            format!("Message {i}"),
        )
        .with_text("body")
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn pooled_connections_have_tcp_nodelay() {
        let sink = SmtpSink::start().await.unwrap();
        let channel = SmtpEmailChannel::new(config(sink.port()).with_pool_max_size(3)).unwrap();
        let emails: Vec<_> = (0..3).map(email).collect();
        let sends = emails.iter().map(|email| channel.send_email(email));
        for result in futures::future::join_all(sends).await {
            result.unwrap();
        }
        let nodelay = channel.pool.idle_nodelay();
        assert!(!nodelay.is_empty(), "the connections are back in the pool");
        assert!(
            nodelay.iter().all(|on| *on),
            "TCP_NODELAY on every pooled socket: {nodelay:?}"
        );
        sink.wait_for_messages(3, WAIT).await.unwrap();
    }

    #[tokio::test]
    async fn one_connection_carries_consecutive_sends_without_noop() {
        let sink = SmtpSink::start().await.unwrap();
        let channel = SmtpEmailChannel::new(config(sink.port())).unwrap();
        for i in 0..3 {
            let receipt = channel.send_email(&email(i)).await.unwrap();
            assert_eq!(receipt.provider, "smtp");
        }
        let messages = sink.wait_for_messages(3, WAIT).await.unwrap();
        assert_eq!(sink.connections(), 1);
        assert_eq!(sink.command_count(SmtpCommand::Noop), 0);
        assert!(messages.iter().all(|message| message.connection == 1));
    }

    #[tokio::test]
    async fn the_receipt_carries_the_message_id_the_server_received() {
        let sink = SmtpSink::start().await.unwrap();
        let channel = SmtpEmailChannel::new(config(sink.port())).unwrap();
        let receipt = channel.send_email(&email(0)).await.unwrap();
        assert_eq!(receipt.provider, "smtp");
        let second = channel.send_email(&email(1)).await.unwrap();
        let messages = sink.wait_for_messages(2, WAIT).await.unwrap();
        // The channel sets a Message-ID of its own on every email, at the
        // sender's domain, and the receipt carries it (without the brackets).
        let sent = messages[0]
            .header("Message-ID")
            .map(|id| id.trim().to_owned())
            .expect("a Message-ID header");
        assert!(
            sent.starts_with('<') && sent.ends_with("@example.com>"),
            "{sent}"
        );
        assert_eq!(
            receipt.provider_message_id.as_deref(),
            Some(sent.trim_matches(['<', '>']))
        );
        assert_ne!(
            receipt.provider_message_id, second.provider_message_id,
            "each email has its own id"
        );
        assert_eq!(
            messages[1]
                .header("Message-ID")
                .map(|id| id.trim().trim_matches(['<', '>']).to_owned()),
            second.provider_message_id
        );
    }

    #[tokio::test]
    async fn each_relay_gets_the_notification_id_in_its_metadata_header() {
        let sink = SmtpSink::start().await.unwrap();
        let id = uuid::Uuid::now_v7().hyphenated().to_string();
        let expected = [
            (
                SmtpProvider::Ses,
                "X-SES-MESSAGE-TAGS",
                format!("notification_id={id}"),
            ),
            (
                SmtpProvider::SendGrid,
                "X-SMTPAPI",
                format!(r#"{{"unique_args":{{"notification_id":"{id}"}}}}"#),
            ),
            (
                SmtpProvider::Postmark,
                "X-PM-Metadata-notification_id",
                id.clone(),
            ),
            (
                SmtpProvider::Mailgun,
                "X-Mailgun-Variables",
                format!(r#"{{"notification_id":"{id}"}}"#),
            ),
        ];
        for (i, (provider, _, _)) in expected.iter().enumerate() {
            let channel =
                SmtpEmailChannel::new(config(sink.port()).with_provider(*provider)).unwrap();
            channel
                .send_email(&email(i).with_reference(&id))
                .await
                .unwrap();
        }
        // Generic: none of them; and no header without a reference.
        let generic = SmtpEmailChannel::new(config(sink.port())).unwrap();
        generic
            .send_email(&email(4).with_reference(&id))
            .await
            .unwrap();
        let sendgrid =
            SmtpEmailChannel::new(config(sink.port()).with_provider(SmtpProvider::SendGrid))
                .unwrap();
        sendgrid.send_email(&email(5)).await.unwrap();
        let messages = sink.wait_for_messages(6, WAIT).await.unwrap();
        for (i, (provider, header, value)) in expected.iter().enumerate() {
            assert_eq!(
                messages[i].header(header).as_deref().map(str::trim),
                Some(value.as_str()),
                "{provider:?}"
            );
        }
        for message in &messages[4..] {
            for (_, header, _) in &expected {
                assert_eq!(message.header(header), None, "{header}");
            }
        }
    }

    #[test]
    fn the_ses_message_id_is_read_from_its_reply_and_nothing_else_is() {
        let id = "0100018c3a6f1e2d-4c5b9a8f-7e6d-4c5b-9a21-7e6d5c4b3a21-000000";
        assert_eq!(
            ses_message_id(Some(&format!("Ok {id}"))).as_deref(),
            Some(id)
        );
        assert_eq!(
            ses_message_id(Some(&format!("2.0.0 Ok {id}"))).as_deref(),
            Some(id)
        );
        for other in [
            "2.0.0 Ok: queued as 4Xyz7",
            "Ok: queued as 4Xyz7",
            "2.0.0 queued",
            "Ok",
            "Ok short1",
            "Ok <script>",
            "",
        ] {
            assert_eq!(ses_message_id(Some(other)), None, "{other:?}");
        }
        assert_eq!(ses_message_id(None), None);
    }

    #[tokio::test]
    async fn with_ses_the_receipt_carries_the_id_of_its_reply_else_the_message_id() {
        let sink = SmtpSink::start().await.unwrap();
        let id = "0100018c3a6f1e2d-4c5b9a8f-7e6d-4c5b-9a21-7e6d5c4b3a21-000000";
        sink.fail_next(
            SmtpCommand::MessageEnd,
            1,
            Reply::new(250, format!("Ok {id}")),
        );
        let ses =
            SmtpEmailChannel::new(config(sink.port()).with_provider(SmtpProvider::Ses)).unwrap();
        let receipt = ses.send_email(&email(0)).await.unwrap();
        assert_eq!(receipt.provider_message_id.as_deref(), Some(id));
        // A reply without one (this sink's own): the Message-ID, as for any relay.
        let receipt = ses.send_email(&email(1)).await.unwrap();
        let sent = sink.wait_for_messages(1, WAIT).await.unwrap();
        assert_eq!(
            receipt.provider_message_id,
            sent[0]
                .header("Message-ID")
                .map(|h| h.trim().trim_matches(['<', '>']).to_owned())
        );
        // Another relay answering in SES's form: still the Message-ID.
        sink.fail_next(
            SmtpCommand::MessageEnd,
            1,
            Reply::new(250, format!("Ok {id}")),
        );
        let generic = SmtpEmailChannel::new(config(sink.port())).unwrap();
        let receipt = generic.send_email(&email(2)).await.unwrap();
        assert_ne!(receipt.provider_message_id.as_deref(), Some(id));
        assert!(receipt.provider_message_id.is_some());
    }

    #[tokio::test]
    async fn a_refused_transaction_is_reset_and_its_connection_reused() {
        let sink = SmtpSink::start().await.unwrap();
        let channel = SmtpEmailChannel::new(config(sink.port())).unwrap();
        sink.fail_next(SmtpCommand::Rcpt, 1, Reply::new(550, "5.1.1 no such user"));
        let error = channel.send_email(&email(0)).await.unwrap_err();
        assert!(
            matches!(
                error,
                NotificationError::Smtp {
                    code: Some(550),
                    transient: false,
                    ..
                }
            ),
            "{error:?}"
        );
        channel.send_email(&email(1)).await.unwrap();
        sink.wait_for_messages(1, WAIT).await.unwrap();
        assert_eq!(sink.command_count(SmtpCommand::Rset), 1);
        assert_eq!(
            sink.connections(),
            1,
            "the refused transaction kept its connection"
        );
    }

    #[tokio::test]
    async fn a_4xx_at_message_end_is_transient_and_keeps_the_connection() {
        let sink = SmtpSink::start().await.unwrap();
        let channel = SmtpEmailChannel::new(config(sink.port())).unwrap();
        sink.fail_next(
            SmtpCommand::MessageEnd,
            1,
            Reply::new(451, "4.3.0 try later"),
        );
        let error = channel.send_email(&email(0)).await.unwrap_err();
        assert!(error.is_transient(), "{error:?}");
        assert!(matches!(
            error,
            NotificationError::Smtp {
                code: Some(451),
                ..
            }
        ));
        channel.send_email(&email(1)).await.unwrap();
        assert_eq!(sink.wait_for_messages(1, WAIT).await.unwrap().len(), 1);
        assert_eq!(sink.connections(), 1);
    }

    #[tokio::test]
    async fn a_pooled_connection_the_server_closes_with_421_is_replaced() {
        let sink = SmtpSink::start().await.unwrap();
        let channel = SmtpEmailChannel::new(config(sink.port())).unwrap();
        channel.send_email(&email(0)).await.unwrap();
        sink.fail_next(SmtpCommand::Mail, 1, Reply::new(421, "4.4.2 idle too long"));
        // No retry policy: the fresh connection is part of the one send.
        channel.send_email(&email(1)).await.unwrap();
        let messages = sink.wait_for_messages(2, WAIT).await.unwrap();
        assert_eq!(sink.connections(), 2);
        assert_eq!(messages[1].connection, 2);
    }

    /// A loopback TCP proxy whose connections can be cut.
    struct Proxy {
        addr: SocketAddr,
        links: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>>,
        accept: tokio::task::JoinHandle<()>,
    }

    impl Proxy {
        async fn start(target: SocketAddr) -> Self {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let links = Arc::new(Mutex::new(Vec::new()));
            let registry = links.clone();
            let accept = tokio::spawn(async move {
                while let Ok((mut inbound, _)) = listener.accept().await {
                    let link = tokio::spawn(async move {
                        let mut outbound = tokio::net::TcpStream::connect(target).await.unwrap();
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    });
                    registry.lock().unwrap().push(link);
                }
            });
            Self {
                addr,
                links,
                accept,
            }
        }

        /// Closes every connection made so far, and waits until they are closed.
        async fn cut(&self) {
            let links: Vec<_> = std::mem::take(&mut *self.links.lock().unwrap());
            for link in links {
                link.abort();
                let _ = link.await;
            }
        }
    }

    impl Drop for Proxy {
        fn drop(&mut self) {
            self.accept.abort();
        }
    }

    #[tokio::test]
    async fn a_broken_pooled_connection_is_dropped_and_a_fresh_one_used() {
        let sink = SmtpSink::start().await.unwrap();
        let proxy = Proxy::start(sink.addr()).await;
        let channel = SmtpEmailChannel::new(config(proxy.addr.port())).unwrap();
        channel.send_email(&email(0)).await.unwrap();
        sink.wait_for_messages(1, WAIT).await.unwrap();
        assert_eq!(channel.pool.idle_count(), 1);
        proxy.cut().await;
        channel.send_email(&email(1)).await.unwrap();
        let messages = sink.wait_for_messages(2, WAIT).await.unwrap();
        assert_eq!(sink.connections(), 2);
        assert_eq!(messages.len(), 2);
    }

    #[tokio::test]
    async fn pool_max_size_bounds_the_open_connections() {
        let sink = SmtpSink::start().await.unwrap();
        let channel = SmtpEmailChannel::new(config(sink.port()).with_pool_max_size(2)).unwrap();
        let emails: Vec<_> = (0..12).map(email).collect();
        let sends = emails.iter().map(|email| channel.send_email(email));
        for result in futures::future::join_all(sends).await {
            result.unwrap();
        }
        sink.wait_for_messages(12, WAIT).await.unwrap();
        assert!(
            sink.connections() <= 2,
            "{} connections",
            sink.connections()
        );
    }

    #[tokio::test]
    async fn an_idle_connection_past_its_timeout_is_not_reused() {
        let sink = SmtpSink::start().await.unwrap();
        let channel =
            SmtpEmailChannel::new(config(sink.port()).with_pool_idle_timeout(Duration::ZERO))
                .unwrap();
        channel.send_email(&email(0)).await.unwrap();
        channel.send_email(&email(1)).await.unwrap();
        sink.wait_for_messages(2, WAIT).await.unwrap();
        assert_eq!(sink.connections(), 2);
    }

    #[tokio::test]
    async fn min_idle_connections_are_opened_ahead_of_need() {
        let sink = SmtpSink::start().await.unwrap();
        let channel = SmtpEmailChannel::new(
            config(sink.port())
                .with_pool_max_size(4)
                .with_pool_min_idle(3),
        )
        .unwrap();
        channel.send_email(&email(0)).await.unwrap();
        let deadline = std::time::Instant::now() + WAIT;
        while channel.pool.idle_count() < 3 {
            assert!(
                std::time::Instant::now() < deadline,
                "{} idle connections",
                channel.pool.idle_count()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(sink.connections() <= 4);
    }

    #[tokio::test]
    async fn credentials_are_sent_with_auth() {
        let sink = SmtpSink::start().await.unwrap();
        let channel =
            SmtpEmailChannel::new(config(sink.port()).with_credentials("mailer", "secret"))
                .unwrap();
        channel.send_email(&email(0)).await.unwrap();
        let message = &sink.wait_for_messages(1, WAIT).await.unwrap()[0];
        assert_eq!(message.auth_user.as_deref(), Some("mailer"));
        assert_eq!(sink.command_count(SmtpCommand::Auth), 1);
    }

    #[tokio::test]
    async fn a_silent_server_times_out_as_a_transient_failure() {
        // Accepts and never says a word: the greeting never comes.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let held = tokio::spawn(async move {
            let mut open = Vec::new();
            while let Ok((stream, _)) = listener.accept().await {
                open.push(stream);
            }
        });
        let channel =
            SmtpEmailChannel::new(config(port).with_timeout(Duration::from_millis(200))).unwrap();
        let error = tokio::time::timeout(WAIT, channel.send_email(&email(0)))
            .await
            .expect("the channel's own timeout ends the send")
            .unwrap_err();
        assert!(error.is_transient(), "{error:?}");
        assert!(
            matches!(error, NotificationError::Smtp { code: None, .. }),
            "{error:?}"
        );
        assert!(error.to_string().contains("greeting"), "{error}");
        held.abort();
    }
}
