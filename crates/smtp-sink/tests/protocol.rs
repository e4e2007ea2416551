//! The sink over real TCP, driven by a hand-written client.

use std::time::Duration;

use smtp_sink::{Reply, SinkOptions, SmtpCommand, SmtpSink};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

struct Client {
    lines: Lines<BufReader<OwnedReadHalf>>,
    write: OwnedWriteHalf,
}

impl Client {
    async fn connect(sink: &SmtpSink) -> Self {
        let (read, write) = TcpStream::connect(sink.addr()).await.unwrap().into_split();
        let mut client = Self {
            lines: BufReader::new(read).lines(),
            write,
        };
        assert!(client.read_reply().await.starts_with("220"));
        client
    }

    /// Reads one (possibly multi-line) reply; returns its last line.
    async fn read_reply(&mut self) -> String {
        loop {
            let line = self.lines.next_line().await.unwrap().unwrap();
            if line.as_bytes().get(3) != Some(&b'-') {
                return line;
            }
        }
    }

    async fn command(&mut self, command: &str) -> String {
        self.write
            .write_all(format!("{command}\r\n").as_bytes())
            .await
            .unwrap();
        self.read_reply().await
    }
}

#[tokio::test]
async fn records_envelope_and_unstuffs_dots() {
    let sink = SmtpSink::start().await.unwrap();
    let mut client = Client::connect(&sink).await;
    assert!(client.command("EHLO tester").await.starts_with("250"));
    assert!(
        client
            .command("MAIL FROM:<from@example.com>")
            .await
            .starts_with("250")
    );
    assert!(
        client
            .command("RCPT TO:<one@example.com>")
            .await
            .starts_with("250")
    );
    assert!(
        client
            .command("RCPT TO:<two@example.com>")
            .await
            .starts_with("250")
    );
    assert!(client.command("DATA").await.starts_with("354"));
    let reply = client
        .command("Subject: dots\r\n\r\n..leading dot\r\nplain\r\n.")
        .await;
    assert!(reply.starts_with("250"), "{reply}");
    assert!(client.command("QUIT").await.starts_with("221"));

    let messages = sink
        .wait_for_messages(1, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(messages[0].envelope_from, "from@example.com");
    assert_eq!(
        messages[0].recipients,
        ["one@example.com", "two@example.com"]
    );
    assert_eq!(messages[0].raw_body(), ".leading dot\r\nplain\r\n");
    assert_eq!(sink.connections(), 1);
}

#[tokio::test]
async fn answers_armed_failures_then_recovers() {
    let sink = SmtpSink::start().await.unwrap();
    sink.fail_next(SmtpCommand::Rcpt, 1, Reply::new(451, "4.3.0 later"));
    sink.fail_next(SmtpCommand::MessageEnd, 1, Reply::permanent());
    let mut client = Client::connect(&sink).await;
    client.command("HELO tester").await;
    client.command("MAIL FROM:<a@example.com>").await;
    assert_eq!(
        client.command("RCPT TO:<b@example.com>").await,
        "451 4.3.0 later"
    );
    assert!(
        client
            .command("RCPT TO:<b@example.com>")
            .await
            .starts_with("250")
    );
    client.command("DATA").await;
    assert!(
        client
            .command("Subject: x\r\n\r\nbody\r\n.")
            .await
            .starts_with("550")
    );
    assert_eq!(sink.message_count(), 0, "a refused message is not recorded");

    assert!(client.command("RSET").await.starts_with("250"));
    client.command("MAIL FROM:<a@example.com>").await;
    client.command("RCPT TO:<b@example.com>").await;
    client.command("DATA").await;
    assert!(
        client
            .command("Subject: y\r\n\r\nbody\r\n.")
            .await
            .starts_with("250")
    );
    let messages = sink
        .wait_for_messages(1, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(messages[0].subject().as_deref(), Some("y"));
}

#[tokio::test]
async fn refuses_out_of_order_commands() {
    let sink = SmtpSink::start().await.unwrap();
    let mut client = Client::connect(&sink).await;
    assert!(
        client
            .command("RCPT TO:<b@example.com>")
            .await
            .starts_with("503")
    );
    assert!(client.command("DATA").await.starts_with("503"));
    assert!(client.command("VRFY x").await.starts_with("502"));
    assert!(client.command("NOOP").await.starts_with("250"));
}

#[tokio::test]
async fn wait_reports_a_timeout_with_the_count() {
    let sink = SmtpSink::start().await.unwrap();
    let error = sink
        .wait_for_messages(1, Duration::from_millis(20))
        .await
        .unwrap_err();
    assert_eq!((error.wanted, error.received), (1, 0));
}

#[tokio::test]
async fn appends_to_an_mbox_file() {
    let path = std::env::temp_dir().join(format!("smtp-sink-{}.mbox", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let sink = SmtpSink::start_with(SinkOptions::default().with_mbox(&path))
        .await
        .unwrap();
    let mut client = Client::connect(&sink).await;
    client.command("HELO t").await;
    client.command("MAIL FROM:<a@example.com>").await;
    client.command("RCPT TO:<b@example.com>").await;
    client.command("DATA").await;
    client
        .command("Subject: filed\r\n\r\nFrom the start\r\n.")
        .await;
    sink.wait_for_messages(1, Duration::from_secs(5))
        .await
        .unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    assert!(text.starts_with("From a@example.com "));
    assert!(text.contains("Subject: filed\n"));
    assert!(text.contains(">From the start\n"));
}

#[tokio::test]
async fn records_the_authenticated_user() {
    let sink = SmtpSink::start().await.unwrap();
    let mut client = Client::connect(&sink).await;
    client.command("EHLO t").await;
    // "\0alice\0secret" in base64.
    assert!(
        client
            .command("AUTH PLAIN AGFsaWNlAHNlY3JldA==")
            .await
            .starts_with("235")
    );
    client.command("MAIL FROM:<a@example.com>").await;
    client.command("RCPT TO:<b@example.com>").await;
    client.command("DATA").await;
    client.command("Subject: s\r\n\r\nb\r\n.").await;
    let messages = sink
        .wait_for_messages(1, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(messages[0].auth_user.as_deref(), Some("alice"));
}
