//! A small, real SMTP server for tests, benchmarks and demos.
//!
//! [`SmtpSink`] binds `127.0.0.1:0`, speaks enough of RFC 5321 for a real client
//! (EHLO/HELO, MAIL FROM, RCPT TO, DATA with dot-unstuffing, RSET, NOOP, QUIT, and
//! AUTH PLAIN/LOGIN accepting any credentials; no TLS), records every message it
//! receives, counts connections, and answers chosen commands with a 4xx or 5xx
//! reply on demand ([`SmtpSink::fail_next`]).
//!
//! Waiting is done on a signal, never by sleeping: [`SmtpSink::wait_for_messages`]
//! returns as soon as the N-th message is in, or an error at the deadline.
//!
//! ```
//! use std::time::Duration;
//! use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> std::io::Result<()> {
//! let sink = smtp_sink::SmtpSink::start().await?;
//!
//! // Any SMTP client works; here the conversation is typed by hand.
//! let stream = tokio::net::TcpStream::connect(sink.addr()).await?;
//! let (read, mut write) = stream.into_split();
//! let mut lines = BufReader::new(read).lines();
//! lines.next_line().await?; // 220 greeting
//! for command in ["HELO test", "MAIL FROM:<a@example.com>", "RCPT TO:<b@example.com>", "DATA"] {
//!     write.write_all(format!("{command}\r\n").as_bytes()).await?;
//!     lines.next_line().await?;
//! }
//! write.write_all(b"Subject: Hello\r\n\r\nHi there\r\n.\r\nQUIT\r\n").await?;
//!
//! let messages = sink.wait_for_messages(1, Duration::from_secs(5)).await.unwrap();
//! assert_eq!(messages[0].recipients, ["b@example.com"]);
//! assert_eq!(messages[0].subject().as_deref(), Some("Hello"));
//! assert_eq!(messages[0].text_body().as_deref(), Some("Hi there\r\n"));
//! # Ok(()) }
//! ```
//!
//! Failing on demand:
//!
//! ```
//! use smtp_sink::{Reply, SmtpCommand, SmtpSink};
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> std::io::Result<()> {
//! let sink = SmtpSink::start().await?;
//! // The next RCPT TO is refused as a temporary failure; later ones succeed.
//! sink.fail_next(SmtpCommand::Rcpt, 1, Reply::new(451, "4.3.0 try again later"));
//! // Every end of DATA is refused permanently until cleared.
//! sink.fail_next(SmtpCommand::MessageEnd, usize::MAX, Reply::new(554, "5.6.0 rejected"));
//! sink.clear_failures();
//! # Ok(()) }
//! ```

mod mime;
mod server;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::net::TcpListener;
use tokio::sync::watch;

pub use mime::MimePart;

/// An SMTP command (or protocol step) whose reply can be replaced by a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SmtpCommand {
    /// `EHLO` or `HELO`.
    Hello,
    /// `MAIL FROM`.
    Mail,
    /// `RCPT TO`.
    Rcpt,
    /// The `DATA` command itself (instead of `354`).
    Data,
    /// The end of the message data (the final `.`): the message is then not recorded.
    MessageEnd,
    /// `RSET`.
    Rset,
    /// `NOOP`.
    Noop,
    /// `AUTH`.
    Auth,
}

/// An SMTP reply: a three-digit code and a text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The reply code (`451`, `550`, …).
    pub code: u16,
    /// The text after the code.
    pub text: String,
}

impl Reply {
    /// A reply with this code and text. CR and LF in the text are replaced with spaces.
    pub fn new(code: u16, text: impl Into<String>) -> Self {
        let text = text.into().replace(['\r', '\n'], " ");
        Self { code, text }
    }

    /// `451 4.3.0 temporary failure`: a transient failure.
    pub fn transient() -> Self {
        Self::new(451, "4.3.0 temporary failure (smtp-sink)")
    }

    /// `550 5.1.1 rejected`: a permanent failure.
    pub fn permanent() -> Self {
        Self::new(550, "5.1.1 rejected (smtp-sink)")
    }
}

/// One message received by the sink.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReceivedMessage {
    /// The envelope sender (`MAIL FROM`), without angle brackets; empty for `<>`.
    pub envelope_from: String,
    /// The envelope recipients (`RCPT TO`), without angle brackets, in order.
    pub recipients: Vec<String>,
    /// The message data as received, dot-unstuffed, lines ending in CRLF.
    pub data: String,
    /// The user name of `AUTH`, when the client authenticated.
    pub auth_user: Option<String>,
    /// Which connection (1-based, in accept order) carried it.
    pub connection: usize,
    /// When the final `.` was received.
    pub received_at: DateTime<Utc>,
}

impl ReceivedMessage {
    /// The header section, unfolded, as (name, raw value) pairs in order.
    pub fn headers(&self) -> Vec<(String, String)> {
        mime::parse_headers(mime::split_head_body(&self.data).0)
    }

    /// The first header with this name (case-insensitive), RFC 2047 encoded words decoded.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers()
            .into_iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| mime::decode_encoded_words(&value))
    }

    /// The decoded `Subject` header.
    pub fn subject(&self) -> Option<String> {
        self.header("Subject")
    }

    /// Everything after the blank line that ends the headers, as received.
    pub fn raw_body(&self) -> &str {
        mime::split_head_body(&self.data).1
    }

    /// The leaf MIME parts (multiparts flattened), each decoded from its
    /// transfer encoding. A message that is not multipart is one part.
    pub fn parts(&self) -> Vec<MimePart> {
        mime::parse_parts(&self.data)
    }

    /// The decoded body of the first `text/plain` part (or of a message without
    /// a content type).
    pub fn text_body(&self) -> Option<String> {
        self.parts()
            .into_iter()
            .find(|part| part.content_type.is_empty() || part.is_type("text/plain"))
            .map(|part| part.body)
    }

    /// The decoded body of the first `text/html` part.
    pub fn html_body(&self) -> Option<String> {
        self.parts()
            .into_iter()
            .find(|part| part.is_type("text/html"))
            .map(|part| part.body)
    }
}

/// [`SmtpSink::wait_for_messages`] reached its deadline first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WaitTimeout {
    /// Messages wanted.
    pub wanted: usize,
    /// Messages received by the deadline.
    pub received: usize,
}

impl std::fmt::Display for WaitTimeout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "waited for {} messages, {} arrived before the deadline",
            self.wanted, self.received
        )
    }
}

impl std::error::Error for WaitTimeout {}

/// How to start a sink.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct SinkOptions {
    /// Where to listen; `127.0.0.1:0` (a free loopback port) by default.
    pub bind: SocketAddr,
    /// Append every received message to this file (mbox format) as well.
    pub mbox: Option<PathBuf>,
    /// The name in the greeting and the EHLO reply.
    pub hostname: String,
    /// Largest message accepted, in bytes (`552` beyond it).
    pub max_message_bytes: usize,
}

impl Default for SinkOptions {
    fn default() -> Self {
        Self {
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            mbox: None,
            hostname: "smtp-sink.localhost".to_owned(),
            max_message_bytes: 32 * 1024 * 1024,
        }
    }
}

impl SinkOptions {
    /// Sets the listening address.
    pub fn with_bind(mut self, bind: SocketAddr) -> Self {
        self.bind = bind;
        self
    }

    /// Appends every message to this mbox file too.
    pub fn with_mbox(mut self, path: impl Into<PathBuf>) -> Self {
        self.mbox = Some(path.into());
        self
    }

    /// Sets the server's name.
    pub fn with_hostname(mut self, hostname: impl Into<String>) -> Self {
        self.hostname = hostname.into();
        self
    }

    /// Sets the largest message accepted.
    pub fn with_max_message_bytes(mut self, max: usize) -> Self {
        self.max_message_bytes = max;
        self
    }
}

/// A running SMTP sink. Dropping it (or [`SmtpSink::shutdown`]) stops the server
/// and closes every connection.
#[derive(Debug)]
pub struct SmtpSink {
    addr: SocketAddr,
    shared: Arc<Shared>,
    count: watch::Receiver<usize>,
    stop: watch::Sender<bool>,
}

#[derive(Debug)]
pub(crate) struct Fault {
    command: SmtpCommand,
    reply: Reply,
    remaining: usize,
    /// When set, the fault answers every occurrence until this instant, then
    /// disarms itself (`remaining` is ignored).
    until: Option<std::time::Instant>,
}

#[derive(Debug, Default)]
pub(crate) struct State {
    messages: Vec<ReceivedMessage>,
    faults: Vec<Fault>,
    commands: std::collections::HashMap<SmtpCommand, usize>,
}

#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) options: SinkOptions,
    state: Mutex<State>,
    count: watch::Sender<usize>,
    connections: AtomicUsize,
    active: AtomicUsize,
    mbox: Option<Mutex<std::fs::File>>,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the state half-changed in a
        // way that matters to a test sink, so a poisoned lock is used as is.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Counts `command`, then returns the failure to answer it with, if one is
    /// armed (consuming one use).
    pub(crate) fn take_fault(&self, command: SmtpCommand) -> Option<Reply> {
        let mut state = self.state();
        *state.commands.entry(command).or_default() += 1;
        let now = std::time::Instant::now();
        state
            .faults
            .retain(|fault| fault.until.is_none_or(|until| now < until));
        let index = state.faults.iter().position(|f| f.command == command)?;
        let fault = &mut state.faults[index];
        let reply = fault.reply.clone();
        if fault.until.is_some() {
            return Some(reply);
        }
        fault.remaining = fault.remaining.saturating_sub(1);
        if fault.remaining == 0 {
            state.faults.remove(index);
        }
        Some(reply)
    }

    pub(crate) fn record(&self, message: ReceivedMessage) {
        if let Some(mbox) = &self.mbox {
            let mut file = mbox.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            if let Err(error) = mime::write_mbox(&mut *file, &message) {
                tracing::warn!(%error, "smtp-sink: could not append to the mbox file");
            }
        }
        let count = {
            let mut state = self.state();
            state.messages.push(message);
            state.messages.len()
        };
        self.count.send_replace(count);
    }

    pub(crate) fn connection_opened(&self) -> usize {
        self.active.fetch_add(1, Ordering::SeqCst);
        self.connections.fetch_add(1, Ordering::SeqCst) + 1
    }

    pub(crate) fn connection_closed(&self) {
        self.active.fetch_sub(1, Ordering::SeqCst);
    }
}

impl SmtpSink {
    /// Starts a sink on a free loopback port.
    pub async fn start() -> std::io::Result<Self> {
        Self::start_with(SinkOptions::default()).await
    }

    /// Starts a sink with these options.
    pub async fn start_with(options: SinkOptions) -> std::io::Result<Self> {
        let listener = TcpListener::bind(options.bind).await?;
        let addr = listener.local_addr()?;
        let mbox = match &options.mbox {
            Some(path) => Some(Mutex::new(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)?,
            )),
            None => None,
        };
        let (count_tx, count_rx) = watch::channel(0);
        let shared = Arc::new(Shared {
            options,
            state: Mutex::new(State::default()),
            count: count_tx,
            connections: AtomicUsize::new(0),
            active: AtomicUsize::new(0),
            mbox,
        });
        let (stop, stopped) = watch::channel(false);
        tokio::spawn(server::accept_loop(listener, shared.clone(), stopped));
        Ok(Self {
            addr,
            shared,
            count: count_rx,
            stop,
        })
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The host it listens on, as a string (`"127.0.0.1"`).
    pub fn host(&self) -> String {
        self.addr.ip().to_string()
    }

    /// Every message received so far, in order.
    pub fn messages(&self) -> Vec<ReceivedMessage> {
        self.shared.state().messages.clone()
    }

    /// How many messages were received so far.
    pub fn message_count(&self) -> usize {
        *self.count.borrow()
    }

    /// Removes and returns every message received so far.
    pub fn take_messages(&self) -> Vec<ReceivedMessage> {
        let messages = std::mem::take(&mut self.shared.state().messages);
        self.shared.count.send_replace(0);
        messages
    }

    /// How many times `command` was received (failed ones included);
    /// [`SmtpCommand::MessageEnd`] counts complete message data.
    pub fn command_count(&self, command: SmtpCommand) -> usize {
        self.shared
            .state()
            .commands
            .get(&command)
            .copied()
            .unwrap_or(0)
    }

    /// Connections accepted since the start.
    pub fn connections(&self) -> usize {
        self.shared.connections.load(Ordering::SeqCst)
    }

    /// Connections open right now.
    pub fn active_connections(&self) -> usize {
        self.shared.active.load(Ordering::SeqCst)
    }

    /// Answers the next `times` occurrences of `command` with `reply` instead of
    /// the normal reply (`usize::MAX`: until [`SmtpSink::clear_failures`]).
    /// Failures armed for the same command are used in the order they were armed.
    pub fn fail_next(&self, command: SmtpCommand, times: usize, reply: Reply) {
        if times == 0 {
            return;
        }
        self.shared.state().faults.push(Fault {
            command,
            reply,
            remaining: times,
            until: None,
        });
    }

    /// Answers every occurrence of `command` with `reply` for `period` from
    /// now, then answers normally again: an outage of that length (a relay
    /// answering `451` while it restarts, say).
    pub fn fail_for(&self, command: SmtpCommand, period: std::time::Duration, reply: Reply) {
        let until = std::time::Instant::now().checked_add(period);
        self.shared.state().faults.push(Fault {
            command,
            reply,
            remaining: usize::MAX,
            // A period too long to represent: until cleared.
            until: Some(until.unwrap_or_else(|| {
                std::time::Instant::now() + std::time::Duration::from_secs(100 * 365 * 86400)
            })),
        });
    }

    /// Disarms every failure.
    pub fn clear_failures(&self) {
        self.shared.state().faults.clear();
    }

    /// Waits until at least `n` messages were received, then returns them all;
    /// [`WaitTimeout`] if the deadline passes first. Wakes on each arrival, never polls.
    pub async fn wait_for_messages(
        &self,
        n: usize,
        timeout: Duration,
    ) -> Result<Vec<ReceivedMessage>, WaitTimeout> {
        let mut count = self.count.clone();
        let waited = tokio::time::timeout(timeout, count.wait_for(|received| *received >= n)).await;
        match waited {
            Ok(Ok(_)) => Ok(self.messages()),
            _ => Err(WaitTimeout {
                wanted: n,
                received: self.message_count(),
            }),
        }
    }

    /// Stops the server and closes every connection.
    pub fn shutdown(self) {
        drop(self);
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}
