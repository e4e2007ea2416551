//! Batch email throughput to an independent SMTP server: `send_batch_email`
//! with 10,000 recipients to Postfix's `smtp-sink` on loopback (a real SMTP
//! conversation per message over pooled connections, every notification
//! recorded in the in-memory store), against bare lettre sending the same
//! messages with the same concurrency to the same server, in the same run.
//!
//! The baseline is lettre's `AsyncSmtpConnection` over TCP streams with
//! `TCP_NODELAY`, one connection per sender task: lettre's pooled
//! `AsyncSmtpTransport` leaves Nagle on, and against a server that delays its
//! ACKs (Postfix's smtp-sink on Linux does) every message then waits up to
//! 40 ms; that is not the client's limit.
//!
//! Needs `/usr/sbin/smtp-sink` (Debian's `postfix` package).
//! Run: `cargo bench -p notification --bench batch_email`
//! (`BATCH_EMAIL_RECIPIENTS` changes the count, `BATCH_EMAIL_CONCURRENCY` the
//! sends in flight, default 10 = the pool size.)

use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use lettre::Message;
use lettre::message::Mailbox;
use lettre::transport::smtp::client::AsyncSmtpConnection;
use lettre::transport::smtp::extension::ClientId;
use notification::channel::{SmtpConfig, SmtpEmailChannel};
use notification::store::{InMemoryNotificationStore, InMemoryTemplateStore};
use notification::{Content, EmailRequest, NotificationConfig, NotificationService};
use tokio::io::AsyncReadExt;

const POOL: u32 = 10;
const SMTP_SINK: &str = "/usr/sbin/smtp-sink";

fn concurrency() -> usize {
    std::env::var("BATCH_EMAIL_CONCURRENCY")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(POOL as usize)
}

fn main() {
    let recipients: usize = std::env::var("BATCH_EMAIL_RECIPIENTS")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(10_000);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        // Alternate the two, twice, and keep each one's better run: the order
        // and the machine's state then favour neither.
        let mut runs = Vec::new();
        for _ in 0..2 {
            runs.push((service(recipients).await, baseline(recipients).await));
        }
        let ((ours, failed), _) = *runs
            .iter()
            .min_by_key(|((elapsed, _), _)| *elapsed)
            .unwrap();
        let (_, baseline) = *runs.iter().min_by_key(|(_, elapsed)| *elapsed).unwrap();
        let rate = |elapsed: Duration| recipients as f64 / elapsed.as_secs_f64();
        println!(
            "batch_email: best of 2 alternating runs each, {recipients} recipients to Postfix smtp-sink on 127.0.0.1, pool of {POOL} connections, concurrency {}",
            concurrency()
        );
        println!(
            "  NotificationService::send_batch_email            : {:>8.0} emails/s ({:.2?}, {failed} failed)",
            rate(ours),
            ours
        );
        println!(
            "  bare lettre AsyncSmtpConnection, TCP_NODELAY     : {:>8.0} emails/s ({:.2?})",
            rate(baseline),
            baseline
        );
        println!(
            "  ratio                                            : {:>8.2}",
            rate(ours) / rate(baseline)
        );
    });
}

/// Postfix's smtp-sink on a free loopback port, counting the messages it
/// accepts (`-c` prints `mesg=N` after each final `.`); killed on drop.
struct PostfixSink {
    _child: tokio::process::Child,
    port: u16,
    messages: Arc<AtomicUsize>,
}

impl PostfixSink {
    async fn start() -> Self {
        assert!(
            Path::new(SMTP_SINK).exists(),
            "{SMTP_SINK} is missing: install Debian's `postfix` package (scripts/ci-prepare.sh does)"
        );
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free port")
            .port();
        let user = std::env::var("USER").unwrap_or_else(|_| "root".to_owned());
        let mut child = tokio::process::Command::new(SMTP_SINK)
            .args(["-c", "-u", &user])
            .arg(format!("127.0.0.1:{port}"))
            .arg("1000")
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("smtp-sink starts");
        let messages = Arc::new(AtomicUsize::new(0));
        let mut stdout = child.stdout.take().expect("piped");
        let counter = messages.clone();
        tokio::spawn(async move {
            let mut buffer = vec![0; 4096];
            let mut text = String::new();
            while let Ok(read) = stdout.read(&mut buffer).await {
                if read == 0 {
                    break;
                }
                text.push_str(&String::from_utf8_lossy(&buffer[..read]));
                // Complete records end in '\r'; keep a partial one for later.
                let end = text.rfind('\r').map_or(0, |at| at + 1);
                if let Some(count) = text[..end]
                    .rsplit("mesg=")
                    .next()
                    .and_then(|tail| tail.trim_end_matches('\r').parse().ok())
                {
                    counter.store(count, Ordering::Relaxed);
                }
                text.drain(..end);
            }
        });
        let deadline = Instant::now() + Duration::from_secs(10);
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            assert!(Instant::now() < deadline, "smtp-sink does not listen");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Self {
            _child: child,
            port,
            messages,
        }
    }

    /// Waits until smtp-sink has counted `count` messages.
    async fn wait_for_messages(&self, count: usize) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.messages.load(Ordering::Relaxed) < count {
            assert!(
                Instant::now() < deadline,
                "smtp-sink counted {} of {count} messages",
                self.messages.load(Ordering::Relaxed)
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

fn requests(recipients: usize) -> Vec<EmailRequest> {
    (0..recipients)
        .map(|i| {
            EmailRequest::new(
                format!("user-{i}"),
                format!("user{i}@example.com"),
                "Our spring newsletter",
                format!("Hello user {i},\n\nHere is what is new this spring.\n"),
            )
            .unwrap()
        })
        .collect()
}

async fn service(recipients: usize) -> (Duration, usize) {
    let sink = PostfixSink::start().await;
    let channel = SmtpEmailChannel::new(
        SmtpConfig::dangerous_unencrypted("127.0.0.1")
            .with_port(sink.port)
            .with_from("news@example.com", Some("Newsletter"))
            .with_hello_name("bench.localhost")
            .with_pool_max_size(POOL),
    )
    .unwrap();
    let store = InMemoryNotificationStore::new();
    let service = NotificationService::new(
        Arc::new(store.clone()),
        Arc::new(InMemoryTemplateStore::new()),
    )
    .with_email(Arc::new(channel))
    .with_config(NotificationConfig::default().with_batch_concurrency(concurrency()));
    let batch = requests(recipients);
    let started = Instant::now();
    let outcomes = service.send_batch_email(batch).await;
    let elapsed = started.elapsed();
    let failed = outcomes.iter().filter(|outcome| !outcome.is_sent()).count();
    sink.wait_for_messages(recipients - failed).await;
    assert_eq!(store.len(), recipients);
    (elapsed, failed)
}

/// Bare lettre: `concurrency` tasks, each with its own `AsyncSmtpConnection`
/// over a `TCP_NODELAY` stream, building and sending the same messages.
async fn baseline(recipients: usize) -> Duration {
    let sink = PostfixSink::start().await;
    let batch = Arc::new(requests(recipients));
    let next = Arc::new(AtomicUsize::new(0));
    let from: Mailbox = "Newsletter <news@example.com>".parse().unwrap();
    let started = Instant::now();
    let senders: Vec<_> = (0..concurrency())
        .map(|_| {
            let (batch, next, from, port) = (batch.clone(), next.clone(), from.clone(), sink.port);
            tokio::spawn(async move {
                let stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
                    .await
                    .unwrap();
                stream.set_nodelay(true).unwrap();
                let mut connection = AsyncSmtpConnection::connect_with_transport(
                    Box::new(stream),
                    &ClientId::Domain("bench.localhost".to_owned()),
                )
                .await
                .unwrap();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(request) = batch.get(i) else { break };
                    let Content::Given(body) = &request.content else {
                        unreachable!("the bench sends given content")
                    };
                    let message = Message::builder()
                        .from(from.clone())
                        .to(request.to.address().parse().unwrap())
                        .subject(body.subject.clone())
                        .body(body.text.clone().unwrap_or_default())
                        .unwrap();
                    connection
                        .send(message.envelope(), &message.formatted())
                        .await
                        .unwrap();
                }
                let _ = connection.quit().await;
            })
        })
        .collect();
    for sender in senders {
        sender.await.unwrap();
    }
    let elapsed = started.elapsed();
    sink.wait_for_messages(recipients).await;
    elapsed
}
