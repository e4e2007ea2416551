//! The connection pool behind [`SmtpEmailChannel`](super::SmtpEmailChannel):
//! lettre's `AsyncSmtpConnection`s over TCP streams with `TCP_NODELAY`.
//!
//! Why not lettre's pooled `AsyncSmtpTransport`: lettre 0.11 never sets
//! `TCP_NODELAY` and writes a message's body and its closing `\r\n.\r\n` in two
//! writes, so Nagle's algorithm holds the terminator back until the server has
//! acknowledged the body, and a server that delays its ACKs (Linux does, up to
//! 40 ms) makes every message wait that long. lettre fixed it after 0.11.23; until
//! a release carries the fix, the channel opens the TCP stream itself.
//!
//! What else differs from lettre's pool, on purpose:
//! * `max_size` bounds the connections in use at once (a send waits for one),
//!   not only the idle ones: lettre's pool opened a connection for every send
//!   that found it empty and closed it again on return.
//! * No `NOOP` before each reuse (a round trip per message): a reused
//!   connection the server has closed fails at `MAIL FROM`, before anything of
//!   the message was sent, and the send goes on over a fresh connection.
//! * A refused transaction (4xx/5xx reply) keeps its connection: `RSET`, then
//!   back to the pool. lettre closed the connection on every refusal.
//! * The timeout bounds every step (connect, greeting, EHLO, STARTTLS, AUTH,
//!   each command and the message data); lettre's async transport applied it to
//!   the TCP connect only.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use lettre::Address;
use lettre::address::Envelope;
use lettre::transport::smtp::authentication::{Credentials, DEFAULT_MECHANISMS};
#[allow(deprecated)]
use lettre::transport::smtp::client::AsyncNetworkStream;
use lettre::transport::smtp::client::{AsyncSmtpConnection, AsyncTokioStream, TlsParameters};
use lettre::transport::smtp::commands::{Data, Mail, Quit, Rcpt, Rset};
use lettre::transport::smtp::extension::{ClientId, Extension, MailBodyParameter, MailParameter};
use lettre::transport::smtp::response::Response;
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tracing::{debug, warn};

/// Why talking to the server failed, before [`super::classify_failure`] says
/// whether it is worth a retry.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SmtpFailure {
    /// lettre reported it: a reply code, a broken connection, a TLS or client error.
    #[error(transparent)]
    Lettre(#[from] lettre::transport::smtp::Error),
    /// The TCP connection could not be opened (refused, unreachable, no address).
    #[error("cannot connect to {server}: {source}")]
    Connect {
        /// `host:port`.
        server: String,
        /// The system's error.
        #[source]
        source: io::Error,
    },
    /// A step took longer than the configured timeout.
    #[error("{step} took longer than {after:?}")]
    Timeout {
        /// What was waited for.
        step: &'static str,
        /// The timeout.
        after: Duration,
    },
    /// The message needs an extension the server does not offer (nothing was sent).
    #[error("{0}")]
    Unsupported(&'static str),
}

/// How the TCP stream is protected.
#[derive(Clone)]
pub(crate) enum Protection {
    /// Nothing.
    None,
    /// STARTTLS after the first EHLO; refused when the server does not offer it.
    StartTls(TlsParameters),
    /// TLS from the first byte.
    Tls(TlsParameters),
}

/// Everything needed to open one ready-to-send connection.
pub(crate) struct Connector {
    pub(crate) host: String,
    pub(crate) port: u16,
    pub(crate) protection: Protection,
    pub(crate) hello: ClientId,
    pub(crate) credentials: Option<Credentials>,
    pub(crate) timeout: Duration,
}

/// Pool limits.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    /// Connections in use or idle, at most.
    pub(crate) max_size: usize,
    /// Idle connections kept open ahead of need.
    pub(crate) min_idle: usize,
    /// An idle connection older than this is closed, not reused.
    pub(crate) idle_timeout: Duration,
}

/// One open, greeted (and authenticated) SMTP connection.
pub(crate) struct Connection {
    smtp: AsyncSmtpConnection,
    /// A duplicate of the socket's descriptor, so tests can read its options.
    #[cfg(all(test, unix))]
    probe: std::net::TcpStream,
}

struct Parked {
    connection: Connection,
    since: Instant,
}

struct Inner {
    connector: Connector,
    limits: Limits,
    idle: Mutex<Vec<Parked>>,
    /// One permit per connection in use by a send.
    in_use: Semaphore,
}

/// A pool of SMTP connections with `TCP_NODELAY`.
pub(crate) struct SmtpPool {
    inner: Arc<Inner>,
    /// Closes idle connections past their timeout and keeps `min_idle` open;
    /// started by the first send (a runtime is there then).
    upkeep: OnceLock<tokio::task::JoinHandle<()>>,
}

impl Drop for SmtpPool {
    fn drop(&mut self) {
        if let Some(upkeep) = self.upkeep.get() {
            upkeep.abort();
        }
    }
}

/// How a transaction ended when it did not deliver.
enum Refusal {
    /// The server answered a command with a 4xx or 5xx reply: the connection
    /// is in step, a `RSET` makes it reusable.
    Replied(lettre::transport::smtp::Error, Step),
    /// Nothing was sent: the message needs what the server lacks.
    Unsent(SmtpFailure),
    /// The connection broke or timed out: it is closed.
    Broken(SmtpFailure, Step),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Mail,
    Later,
}

impl SmtpPool {
    pub(crate) fn new(connector: Connector, limits: Limits) -> Self {
        let limits = Limits {
            max_size: limits.max_size.max(1),
            min_idle: limits.min_idle.min(limits.max_size.max(1)),
            ..limits
        };
        Self {
            inner: Arc::new(Inner {
                connector,
                limits,
                idle: Mutex::new(Vec::new()),
                in_use: Semaphore::new(limits.max_size),
            }),
            upkeep: OnceLock::new(),
        }
    }

    /// Sends one message over a pooled connection (waiting for one when
    /// `max_size` are in use) and puts the connection back unless it broke.
    pub(crate) async fn send(
        &self,
        envelope: &Envelope,
        message: &[u8],
    ) -> Result<Response, SmtpFailure> {
        self.start_upkeep();
        let inner = &self.inner;
        let _permit = inner
            .in_use
            .acquire()
            .await
            .expect("the semaphore is never closed");
        let mut reuse = true;
        loop {
            let (mut connection, reused) = match reuse.then(|| inner.take_idle()).flatten() {
                Some(connection) => (connection, true),
                None => (inner.connector.open().await?, false),
            };
            match transaction(
                &mut connection.smtp,
                envelope,
                message,
                inner.connector.timeout,
            )
            .await
            {
                Ok(response) => {
                    inner.park(connection);
                    return Ok(response);
                }
                Err(Refusal::Unsent(failure)) => {
                    inner.park(connection);
                    return Err(failure);
                }
                // A server closing an idle connection may say so first (421).
                Err(Refusal::Replied(error, Step::Mail))
                    if reused && error.status().is_some_and(|code| code.to_string() == "421") =>
                {
                    debug!(%error, "a pooled SMTP connection was closed by the server; opening a fresh one");
                    reuse = false;
                }
                Err(Refusal::Replied(error, _)) => {
                    match tokio::time::timeout(
                        inner.connector.timeout,
                        connection.smtp.command(Rset),
                    )
                    .await
                    {
                        Ok(Ok(_)) => inner.park(connection),
                        _ => debug!("RSET failed; the SMTP connection is closed"),
                    }
                    return Err(error.into());
                }
                Err(Refusal::Broken(failure, step)) => {
                    drop(connection);
                    if reused && step == Step::Mail {
                        // Nothing of the message reached the server.
                        debug!(%failure, "a pooled SMTP connection was broken; opening a fresh one");
                        reuse = false;
                    } else {
                        return Err(failure);
                    }
                }
            }
        }
    }

    fn start_upkeep(&self) {
        self.upkeep
            .get_or_init(|| tokio::spawn(upkeep(Arc::downgrade(&self.inner))));
    }

    /// `TCP_NODELAY` of every idle connection's socket, read from the socket now.
    #[cfg(all(test, unix))]
    pub(crate) fn idle_nodelay(&self) -> Vec<bool> {
        self.inner
            .idle
            .lock()
            .unwrap()
            .iter()
            .map(|parked| parked.connection.probe.nodelay().unwrap())
            .collect()
    }

    /// Idle connections.
    #[cfg(test)]
    pub(crate) fn idle_count(&self) -> usize {
        self.inner.idle.lock().unwrap().len()
    }
}

impl Inner {
    /// The most recently parked connection that is not past its idle timeout;
    /// older ones are dropped on the way.
    fn take_idle(&self) -> Option<Connection> {
        let timeout = self.limits.idle_timeout;
        let mut idle = self
            .idle
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        let parked = idle.pop()?;
        if parked.since.elapsed() < timeout {
            return Some(parked.connection);
        }
        // The most recent is too old: so are the others.
        let expired = std::mem::take(&mut *idle);
        drop(idle);
        drop((parked, expired));
        None
    }

    fn park(&self, connection: Connection) {
        if connection.smtp.has_broken() {
            return;
        }
        let mut idle = self
            .idle
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        if idle.len() < self.limits.max_size {
            idle.push(Parked {
                connection,
                since: Instant::now(),
            });
        }
    }

    fn in_use(&self) -> usize {
        self.limits.max_size - self.in_use.available_permits()
    }
}

/// Every so often: close expired idle connections (with `QUIT`), then open
/// connections until `min_idle` are idle (within `max_size`).
async fn upkeep(pool: Weak<Inner>) {
    loop {
        let period = match pool.upgrade() {
            None => return,
            Some(inner) => {
                let expired: Vec<Parked> = {
                    let mut idle = inner
                        .idle
                        .lock()
                        .unwrap_or_else(|poison| poison.into_inner());
                    let timeout = inner.limits.idle_timeout;
                    let (expired, kept) = std::mem::take(&mut *idle)
                        .into_iter()
                        .partition(|parked| parked.since.elapsed() >= timeout);
                    *idle = kept;
                    expired
                };
                for mut parked in expired {
                    let _ = tokio::time::timeout(
                        inner.connector.timeout,
                        parked.connection.smtp.command(Quit),
                    )
                    .await;
                }
                loop {
                    let idle = inner.idle.lock().map(|idle| idle.len()).unwrap_or(0);
                    if idle >= inner.limits.min_idle
                        || idle + inner.in_use() >= inner.limits.max_size
                    {
                        break;
                    }
                    match inner.connector.open().await {
                        Ok(connection) => inner.park(connection),
                        Err(error) => {
                            warn!(%error, "could not open an idle SMTP connection");
                            break;
                        }
                    }
                }
                (inner.limits.idle_timeout / 2)
                    .clamp(Duration::from_millis(50), Duration::from_secs(30))
            }
        };
        tokio::time::sleep(period).await;
    }
}

/// Runs `future` within `after`, or fails with [`SmtpFailure::Timeout`].
async fn within<T, E: Into<SmtpFailure>>(
    after: Duration,
    step: &'static str,
    future: impl Future<Output = Result<T, E>>,
) -> Result<T, SmtpFailure> {
    match tokio::time::timeout(after, future).await {
        Ok(result) => result.map_err(Into::into),
        Err(_) => Err(SmtpFailure::Timeout { step, after }),
    }
}

impl Connector {
    /// Opens a TCP stream with `TCP_NODELAY`, reads the greeting, says EHLO,
    /// protects the connection as configured and authenticates.
    pub(crate) async fn open(&self) -> Result<Connection, SmtpFailure> {
        let timeout = self.timeout;
        let server = || format!("{}:{}", self.host, self.port);
        let tcp = match tokio::time::timeout(
            timeout,
            TcpStream::connect((self.host.as_str(), self.port)),
        )
        .await
        {
            Ok(Ok(tcp)) => tcp,
            Ok(Err(source)) => {
                return Err(SmtpFailure::Connect {
                    server: server(),
                    source,
                });
            }
            Err(_) => {
                return Err(SmtpFailure::Timeout {
                    step: "connecting",
                    after: timeout,
                });
            }
        };
        tcp.set_nodelay(true)
            .map_err(|source| SmtpFailure::Connect {
                server: server(),
                source,
            })?;
        #[cfg(all(test, unix))]
        let probe = {
            use std::os::fd::AsFd;
            std::net::TcpStream::from(tcp.as_fd().try_clone_to_owned().map_err(|source| {
                SmtpFailure::Connect {
                    server: server(),
                    source,
                }
            })?)
        };
        let mut smtp = match &self.protection {
            Protection::None | Protection::StartTls(_) => {
                within(
                    timeout,
                    "the greeting and EHLO",
                    AsyncSmtpConnection::connect_with_transport(Box::new(tcp), &self.hello),
                )
                .await?
            }
            Protection::Tls(parameters) => {
                #[allow(deprecated)]
                let mut stream = AsyncNetworkStream::use_existing_tokio1(Box::new(tcp));
                within(
                    timeout,
                    "the TLS handshake",
                    stream.upgrade_tls(parameters.clone()),
                )
                .await?;
                within(
                    timeout,
                    "the greeting and EHLO",
                    AsyncSmtpConnection::connect_with_transport(
                        Box::new(TlsStream(stream)),
                        &self.hello,
                    ),
                )
                .await?
            }
        };
        if let Protection::StartTls(parameters) = &self.protection {
            // Refused (a client error) when the server does not offer it: never in clear.
            within(
                timeout,
                "STARTTLS",
                smtp.starttls(parameters.clone(), &self.hello),
            )
            .await?;
        }
        if let Some(credentials) = &self.credentials {
            within(timeout, "AUTH", smtp.auth(DEFAULT_MECHANISMS, credentials)).await?;
        }
        Ok(Connection {
            smtp,
            #[cfg(all(test, unix))]
            probe,
        })
    }
}

/// The step of sending the message data and waiting for the server's final
/// reply: a timeout there leaves it unknown whether the message was taken.
pub(crate) const MESSAGE_DATA_STEP: &str = "the message data";

/// `MAIL`, `RCPT` for each recipient, `DATA`, the message: lettre's
/// `AsyncSmtpConnection::send`, except that a refusal leaves the connection
/// open (lettre's closes it) and every step is bounded by `timeout`.
async fn transaction(
    smtp: &mut AsyncSmtpConnection,
    envelope: &Envelope,
    message: &[u8],
    timeout: Duration,
) -> Result<Response, Refusal> {
    let mut options = Vec::new();
    let non_ascii = |address: &Address| !AsRef::<str>::as_ref(address).is_ascii();
    if envelope.from().is_some_and(non_ascii) || envelope.to().iter().any(non_ascii) {
        if !smtp.server_info().supports_feature(Extension::SmtpUtfEight) {
            return Err(Refusal::Unsent(SmtpFailure::Unsupported(
                "the envelope has non-ASCII addresses but the server does not offer SMTPUTF8",
            )));
        }
        options.push(MailParameter::SmtpUtfEight);
    }
    if !message.is_ascii() {
        if !smtp.server_info().supports_feature(Extension::EightBitMime) {
            return Err(Refusal::Unsent(SmtpFailure::Unsupported(
                "the message has non-ASCII bytes but the server does not offer 8BITMIME",
            )));
        }
        options.push(MailParameter::Body(MailBodyParameter::EightBitMime));
    }
    let refusal = |step: Step| {
        move |failure: SmtpFailure| match failure {
            // A reply code: the server is in step with us.
            SmtpFailure::Lettre(error) if error.is_transient() || error.is_permanent() => {
                Refusal::Replied(error, step)
            }
            other => Refusal::Broken(other, step),
        }
    };
    within(
        timeout,
        "MAIL FROM",
        smtp.command(Mail::new(envelope.from().cloned(), options)),
    )
    .await
    .map_err(refusal(Step::Mail))?;
    for to in envelope.to() {
        within(
            timeout,
            "RCPT TO",
            smtp.command(Rcpt::new(to.clone(), Vec::new())),
        )
        .await
        .map_err(refusal(Step::Later))?;
    }
    within(timeout, "DATA", smtp.command(Data))
        .await
        .map_err(refusal(Step::Later))?;
    within(timeout, MESSAGE_DATA_STEP, smtp.message(message))
        .await
        .map_err(refusal(Step::Later))
}

/// lettre's TLS stream (`AsyncNetworkStream` after `upgrade_tls`, lettre's
/// rustls set-up) as the tokio stream `connect_with_transport` takes, for TLS
/// from the first byte: the greeting arrives encrypted.
#[allow(deprecated)]
#[derive(Debug)]
struct TlsStream(AsyncNetworkStream);

impl tokio::io::AsyncRead for TlsStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let unfilled = buf.initialize_unfilled();
        match futures::io::AsyncRead::poll_read(Pin::new(&mut self.get_mut().0), cx, unfilled) {
            Poll::Ready(Ok(read)) => {
                buf.advance(read);
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(error)) => Poll::Ready(Err(error)),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl tokio::io::AsyncWrite for TlsStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        futures::io::AsyncWrite::poll_write(Pin::new(&mut self.get_mut().0), cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        futures::io::AsyncWrite::poll_flush(Pin::new(&mut self.get_mut().0), cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        futures::io::AsyncWrite::poll_close(Pin::new(&mut self.get_mut().0), cx)
    }
}

impl AsyncTokioStream for TlsStream {
    fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.0.peer_addr()
    }
}
