//! Email over SMTP with lettre: async, pooled connections.

use std::time::Duration;

use async_trait::async_trait;
use lettre::message::{Mailbox, MultiPart, SinglePart, header::ContentType};
use lettre::transport::smtp::PoolConfig;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use tracing::{Instrument, debug, info_span, warn};

use super::{EmailAddress, EmailChannel, EmailMessage, ProviderRetryPolicy, SendReceipt};
use crate::NotificationError;
use crate::template::single_line;

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
    /// How long each SMTP command may take.
    pub timeout: Duration,
    /// Most connections kept open at once.
    pub pool_max_size: u32,
    /// Idle connections kept ready.
    pub pool_min_idle: u32,
    /// How long an idle connection is kept.
    pub pool_idle_timeout: Duration,
    /// In-place retries of temporary failures (4xx replies, timeouts, lost
    /// connections) within one send: off by default, the messaging runtime
    /// schedules retries (see [`ProviderRetryPolicy`]).
    pub retry: ProviderRetryPolicy,
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

    /// Sets how long an idle connection is kept.
    pub fn with_pool_idle_timeout(mut self, timeout: Duration) -> Self {
        self.pool_idle_timeout = timeout;
        self
    }
}

/// Sends email through an SMTP server over a pool of connections.
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
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    host: String,
    retry: ProviderRetryPolicy,
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
    /// Builds the transport. No connection is opened until the first send.
    pub fn new(config: SmtpConfig) -> Result<Self, NotificationError> {
        let from = EmailAddress::parse(&config.from)?;
        let from_name = config.from_name.as_deref().map(single_line);
        let from = Mailbox::new(from_name, from.address().parse().map_err(config_error)?);
        let builder = match config.security {
            SmtpSecurity::Tls => {
                AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(config.host.as_str())
                    .port(config.port.unwrap_or(465))
                    .tls(Tls::Wrapper(
                        TlsParameters::new(config.host.clone()).map_err(config_error)?,
                    ))
            }
            SmtpSecurity::StartTls => {
                AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(config.host.as_str())
                    .port(config.port.unwrap_or(587))
                    .tls(Tls::Required(
                        TlsParameters::new(config.host.clone()).map_err(config_error)?,
                    ))
            }
            SmtpSecurity::DangerousUnencrypted => {
                AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(config.host.as_str())
                    .port(config.port.unwrap_or(25))
            }
        };
        let pool = PoolConfig::new()
            .max_size(config.pool_max_size.max(1))
            .min_idle(config.pool_min_idle)
            .idle_timeout(config.pool_idle_timeout);
        let mut builder = builder.timeout(Some(config.timeout)).pool_config(pool);
        if let Some(credentials) = config.credentials {
            builder =
                builder.credentials(Credentials::new(credentials.username, credentials.password));
        }
        if let Some(name) = config.hello_name {
            builder = builder.hello_name(ClientId::Domain(name));
        }
        Ok(Self {
            transport: builder.build(),
            from,
            host: config.host,
            retry: config.retry,
        })
    }

    fn build(&self, email: &EmailMessage) -> Result<Message, NotificationError> {
        email.check()?;
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
        let builder = Message::builder()
            .from(self.from.clone())
            .to(to)
            // One line: a CR or LF in the subject can never start a header.
            .subject(single_line(&email.subject));
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
        let span = info_span!("smtp_send", host = %self.host, reference = email.reference.as_deref().unwrap_or(""));
        async {
            let mut attempt = 1;
            loop {
                match self.transport.send(message.clone()).await.map_err(classify) {
                    Ok(response) => {
                        debug!(code = %response.code(), attempt, "accepted by the SMTP server");
                        return Ok(SendReceipt::new("smtp", message_id));
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
