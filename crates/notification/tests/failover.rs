//! Failover between real SMTP servers on loopback: the project's sink refusing
//! with `421` (before DATA) and Postfix's `smtp-sink` (`/usr/sbin/smtp-sink`),
//! each email received once; and a server that takes the message data and
//! never answers is not failed over (no double send).
//!
//! Run: `cargo test -p notification --test failover`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use messaging_model::{AttemptOutcome, NotificationStatus};
use notification::channel::{
    BreakerState, CircuitBreakerConfig, EmailChannel, FailoverEmailChannel, ManualClock,
    ProviderRetryPolicy, SmtpConfig, SmtpEmailChannel,
};
use notification::store::{InMemoryNotificationStore, InMemoryTemplateStore, NotificationStore};
use notification::{EmailRequest, NotificationError, NotificationService};
use smtp_sink::{Reply, SmtpCommand, SmtpSink};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

const SMTP_SINK: &str = "/usr/sbin/smtp-sink";
const DEADLINE: Duration = Duration::from_secs(30);

/// Postfix's smtp-sink on a free loopback port, one dump file per message.
struct Postfix {
    child: tokio::process::Child,
    port: u16,
    dir: PathBuf,
}

impl Postfix {
    async fn start() -> Self {
        assert!(
            Path::new(SMTP_SINK).exists(),
            "{SMTP_SINK} is missing: install Debian's `postfix` package"
        );
        let dir = std::env::temp_dir().join(format!("failover-{}", uuid::Uuid::now_v7().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .unwrap()
            .port();
        let user = std::env::var("USER")
            .ok()
            .filter(|u| !u.is_empty())
            .unwrap_or_else(|| "root".into());
        let child = tokio::process::Command::new(SMTP_SINK)
            .args(["-u", &user, "-d", &format!("{}/%H%M%S.", dir.display())])
            .arg(format!("127.0.0.1:{port}"))
            .arg("100")
            .kill_on_drop(true)
            .spawn()
            .expect("smtp-sink starts");
        let deadline = tokio::time::Instant::now() + DEADLINE;
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            assert!(
                tokio::time::Instant::now() < deadline,
                "smtp-sink does not listen"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Self { child, port, dir }
    }

    /// The envelope recipients of every message it took, one entry per message.
    fn recipients(&self) -> Vec<String> {
        let mut all = Vec::new();
        for entry in std::fs::read_dir(&self.dir).unwrap() {
            let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
            for line in text.lines() {
                if let Some(rcpt) = line.strip_prefix("X-Rcpt-Args: <") {
                    all.push(rcpt.split('>').next().unwrap_or_default().to_owned());
                }
            }
        }
        all.sort();
        all
    }
}

impl Drop for Postfix {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn smtp(port: u16, timeout: Duration) -> Arc<dyn EmailChannel> {
    Arc::new(
        SmtpEmailChannel::new(
            SmtpConfig::dangerous_unencrypted("127.0.0.1")
                .with_port(port)
                .with_from("noreply@example.com", None)
                .with_hello_name("tests.localhost")
                .with_timeout(timeout)
                .with_retry(ProviderRetryPolicy::none()),
        )
        .unwrap(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_refusing_with_421_fails_over_to_postfix_and_each_email_arrives_once() {
    let refusing = SmtpSink::start().await.unwrap();
    refusing.fail_next(
        SmtpCommand::Mail,
        usize::MAX,
        Reply::new(421, "4.3.2 service not available"),
    );
    let postfix = Postfix::start().await;
    let clock = ManualClock::new();
    let channel = Arc::new(FailoverEmailChannel::with_clock(
        vec![
            (
                "relay-a".into(),
                smtp(refusing.port(), Duration::from_secs(5)),
            ),
            ("relay-b".into(), smtp(postfix.port, Duration::from_secs(5))),
        ],
        CircuitBreakerConfig::default()
            .with_failure_threshold(2)
            .with_cool_down(Duration::from_secs(60)),
        clock.clone(),
    ));
    let store = InMemoryNotificationStore::new();
    let service = NotificationService::new(
        Arc::new(store.clone()),
        Arc::new(InMemoryTemplateStore::new()),
    )
    .with_email(channel.clone());

    let mut sent = Vec::new();
    let mut mails_before_third = 0;
    for i in 0..3 {
        if i == 2 {
            assert_eq!(channel.breaker_states()[0].1, BreakerState::Open);
            mails_before_third = refusing.command_count(SmtpCommand::Mail);
        }
        let to = format!("user{i}@example.com");
        let n = service
            .send_email(EmailRequest::new("u1", &to, format!("Message {i}"), "Hi").unwrap())
            .await
            .expect("relay-b takes it");
        assert_eq!(n.status, NotificationStatus::Sent);
        sent.push(n);
    }
    // Each email exactly once, at the second server; none at the first.
    assert_eq!(
        postfix.recipients(),
        [
            "user0@example.com",
            "user1@example.com",
            "user2@example.com"
        ]
    );
    assert_eq!(refusing.message_count(), 0);
    // Two refused sends opened relay-a's breaker: the third did not try it.
    assert_eq!(
        refusing.command_count(SmtpCommand::Mail),
        mails_before_third
    );
    assert_eq!(
        channel.breaker_states(),
        [
            ("relay-a".to_owned(), BreakerState::Open),
            ("relay-b".to_owned(), BreakerState::Closed)
        ]
    );

    // The attempt log names the provider of every attempt.
    let log = store.list_attempts("u1", sent[0].id).await.unwrap();
    let named: Vec<(&str, AttemptOutcome)> = log
        .iter()
        .map(|a| (a.provider.as_str(), a.outcome))
        .collect();
    assert_eq!(
        named,
        [
            ("relay-b", AttemptOutcome::Sent),
            ("relay-a", AttemptOutcome::Failed)
        ]
    );
    assert!(log[1].error.as_deref().unwrap().contains("421"), "{log:?}");
    let third = store.list_attempts("u1", sent[2].id).await.unwrap();
    assert!(
        third[1]
            .error
            .as_deref()
            .unwrap()
            .contains("circuit breaker open"),
        "{third:?}"
    );

    // After the cool-down relay-a gets a probe; it still refuses, so it opens
    // again and the email goes to relay-b.
    clock.advance(Duration::from_secs(60));
    service
        .send_email(EmailRequest::new("u1", "user3@example.com", "Message 3", "Hi").unwrap())
        .await
        .unwrap();
    assert!(
        refusing.command_count(SmtpCommand::Mail) > mails_before_third,
        "the probe went to relay-a"
    );
    assert_eq!(channel.breaker_states()[0].1, BreakerState::Open);
    // relay-a recovers: the next probe closes its breaker, and it is used again.
    refusing.clear_failures();
    clock.advance(Duration::from_secs(60));
    let n = service
        .send_email(EmailRequest::new("u1", "user4@example.com", "Message 4", "Hi").unwrap())
        .await
        .unwrap();
    assert_eq!(channel.breaker_states()[0].1, BreakerState::Closed);
    assert_eq!(refusing.message_count(), 1);
    let log = store.list_attempts("u1", n.id).await.unwrap();
    assert_eq!(log.len(), 1);
    assert_eq!(log[0].provider, "relay-a");
    assert_eq!(postfix.recipients().len(), 4, "user4 went to relay-a only");
}

/// An SMTP server that takes a whole message and then never answers; says
/// when it has the message data.
async fn silent_after_data() -> (u16, tokio::sync::mpsc::UnboundedReceiver<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (got_data, signal) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let got_data = got_data.clone();
            tokio::spawn(async move {
                let (read, mut write) = stream.into_split();
                let mut lines = BufReader::new(read).lines();
                write.write_all(b"220 silent.test ESMTP\r\n").await.ok();
                let mut in_data = false;
                while let Ok(Some(line)) = lines.next_line().await {
                    if in_data {
                        if line == "." {
                            let _ = got_data.send(());
                            // Never answer: hold the connection until the client goes.
                            while let Ok(Some(_)) = lines.next_line().await {}
                            return;
                        }
                        continue;
                    }
                    let upper = line.to_ascii_uppercase();
                    let reply: &[u8] = if upper.starts_with("EHLO") || upper.starts_with("HELO") {
                        b"250 silent.test\r\n"
                    } else if upper.starts_with("DATA") {
                        in_data = true;
                        b"354 go ahead\r\n"
                    } else if upper.starts_with("QUIT") {
                        b"221 bye\r\n"
                    } else {
                        b"250 ok\r\n"
                    };
                    if write.write_all(reply).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (port, signal)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_that_takes_the_data_and_never_answers_is_not_failed_over() {
    let (silent, mut got_data) = silent_after_data().await;
    let postfix = Postfix::start().await;
    let channel = Arc::new(FailoverEmailChannel::new(
        vec![
            // The timeout bounds how long the test waits for the missing reply.
            ("relay-a".into(), smtp(silent, Duration::from_millis(500))),
            ("relay-b".into(), smtp(postfix.port, Duration::from_secs(5))),
        ],
        CircuitBreakerConfig::default(),
    ));
    let store = InMemoryNotificationStore::new();
    let service = NotificationService::new(
        Arc::new(store.clone()),
        Arc::new(InMemoryTemplateStore::new()),
    )
    .with_email(channel.clone());

    let error = service
        .send_email(EmailRequest::new("u1", "ann@example.com", "Hello", "Hi").unwrap())
        .await
        .expect_err("relay-a never confirmed it");
    let NotificationError::ProviderFailed {
        provider,
        refused_before,
        source,
    } = &error
    else {
        panic!("not failed over, and named: {error:?}")
    };
    assert_eq!(provider, "relay-a");
    assert!(refused_before.is_empty());
    assert!(
        matches!(**source, NotificationError::Smtp { code: None, .. }),
        "the timeout itself: {error:?}"
    );
    assert!(
        tokio::time::timeout(DEADLINE, got_data.recv())
            .await
            .unwrap()
            .is_some(),
        "relay-a received the whole message"
    );
    assert!(
        postfix.recipients().is_empty(),
        "relay-b was never given it: no double send"
    );
    let recorded = store.all();
    assert_eq!(recorded.len(), 1);
    let log = store.list_attempts("u1", recorded[0].id).await.unwrap();
    assert_eq!(log.len(), 1, "{log:?}");
    assert_eq!(
        (log[0].provider.as_str(), log[0].outcome),
        ("relay-a", AttemptOutcome::Failed)
    );
}
