//! What the end-to-end tests share: the servers from the environment, a
//! namespace per test (Redis key prefix, PostgreSQL schema) removed at the end,
//! an SMTP sink, and the `messaging` binary run as a user runs it.

#![allow(dead_code, unreachable_pub)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use messaging_core::MessagingService;
use messaging_redis::{RedisBackend, RedisBackendConfig};
use serde_json::Value;
use smtp_sink::SmtpSink;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// Postfix's SMTP sink (Debian package `postfix`).
const SMTP_SINK: &str = "/usr/sbin/smtp-sink";

/// How long any wait of a test may last before it fails.
pub const DEADLINE: Duration = Duration::from_secs(30);

/// The path of the built binary.
pub const BIN: &str = env!("CARGO_BIN_EXE_messaging");

/// The servers under test: `REDIS_URL` / `DATABASE_URL`, else containers when a
/// Docker engine answers, else a failure with a hint (`messaging-test-support`).
pub use messaging_test_support::{database_url, redis_url};

/// One test's servers and namespace.
pub struct Env {
    /// Unique per test: `e2e-<uuid>`.
    pub prefix: String,
    /// Unique per test: `e2e_<uuid>`.
    pub schema: String,
    /// A service on the test's Redis prefix, for checks and set-up.
    pub messaging: MessagingService,
    /// The SMTP server the worker sends to.
    pub sink: SmtpSink,
    pool: sqlx::PgPool,
    config_file: PathBuf,
    /// The Redis (one node, or a cluster URL) every command is pointed at.
    redis: String,
}

impl Env {
    /// Connects to Redis and PostgreSQL (failing loudly with how to provide
    /// them), starts an SMTP sink, and writes a worker configuration with short
    /// retry delays.
    pub async fn start() -> Self {
        Self::start_on(redis_url()).await
    }

    /// The same on the Redis at `redis` (a `redis+cluster://` URL for the cluster).
    pub async fn start_on(redis: String) -> Self {
        let id = uuid::Uuid::now_v7().simple().to_string();
        let prefix = format!("e2e-{id}");
        let schema = format!("e2e_{id}");
        let backend = RedisBackend::connect(RedisBackendConfig::new(&redis).with_key_prefix(&prefix))
            .await
            .unwrap_or_else(|error| {
                panic!(
                    "cannot reach Redis at {redis} ({error}). The end-to-end tests need a real Redis 7: \
                     start one (`docker compose up -d redis`, or `redis-server`) and set REDIS_URL"
                )
            });
        let database = database_url();
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(2)
            .connect(&database)
            .await
            .unwrap_or_else(|error| {
                panic!(
                    "cannot reach PostgreSQL at {database} ({error}). The end-to-end tests need a real \
                     PostgreSQL: start one (`docker compose up -d postgres`) and set DATABASE_URL"
                )
            });
        let sink = SmtpSink::start()
            .await
            .expect("the SMTP sink binds 127.0.0.1:0");
        let config_file = std::env::temp_dir().join(format!("messaging-{prefix}.toml"));
        std::fs::write(
            &config_file,
            format!(
                r#"
[worker]
concurrency = 4
visibility_timeout = "10s"
shutdown_timeout = "5s"
stats_interval = "200ms"

[retry]
max_retry = 2
handler_max_retry = 2
initial_delay = "50ms"
max_delay = "200ms"

[smtp]
host = "{host}"
port = {port}
security = "none"
from = "noreply@e2e.invalid"
timeout = "5s"
"#,
                host = sink.host(),
                port = sink.port()
            ),
        )
        .expect("the worker configuration is written");
        Self {
            prefix,
            schema,
            messaging: MessagingService::new(Arc::new(backend)),
            sink,
            pool,
            config_file,
            redis,
        }
    }

    /// A `messaging` command on this test's namespace.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(BIN);
        command
            .args(args)
            .env("REDIS_URL", &self.redis)
            .env("MESSAGING_KEY_PREFIX", &self.prefix)
            .env("DATABASE_URL", database_url())
            .env("MESSAGING_DB_SCHEMA", &self.schema)
            .env("MESSAGING_LOG", "warn")
            .env_remove("MESSAGING_CONFIG")
            .kill_on_drop(true);
        command
    }

    /// Runs a command to its end.
    pub async fn run(&self, args: &[&str]) -> Outcome {
        let output = tokio::time::timeout(DEADLINE, self.command(args).output())
            .await
            .unwrap_or_else(|_| panic!("`messaging {}` did not finish", args.join(" ")))
            .expect("the messaging binary runs");
        Outcome {
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// Runs a command that must succeed and print JSON; returns the JSON.
    pub async fn json(&self, args: &[&str]) -> Value {
        let outcome = self.run(args).await;
        assert_eq!(
            outcome.code,
            Some(0),
            "`messaging {}` failed: {}",
            args.join(" "),
            outcome.stderr
        );
        serde_json::from_str(&outcome.stdout).unwrap_or_else(|error| {
            panic!(
                "`messaging {}` printed no JSON ({error}): {}",
                args.join(" "),
                outcome.stdout
            )
        })
    }

    /// Replaces the worker configuration with what `edit` makes of it (before
    /// [`Env::worker`]).
    pub fn edit_config(&self, edit: impl FnOnce(String) -> String) {
        let text =
            std::fs::read_to_string(&self.config_file).expect("the worker configuration is read");
        std::fs::write(&self.config_file, edit(text)).expect("the worker configuration is written");
    }

    /// Points the worker's `[smtp]` at another server on 127.0.0.1 (before
    /// [`Env::worker`]), e.g. a [`PostfixSink`].
    pub fn send_mail_to(&self, port: u16) {
        let ours = format!("port = {}", self.sink.port());
        self.edit_config(|text| text.replace(&ours, &format!("port = {port}")));
    }

    /// Starts `messaging worker` on this namespace and waits until it is ready.
    pub async fn worker(&self, extra: &[&str]) -> Worker {
        self.worker_with_env(extra, &[]).await
    }

    /// [`Env::worker`] with more environment variables.
    pub async fn worker_with_env(&self, extra: &[&str], envs: &[(&str, &str)]) -> Worker {
        let config = self.config_file.to_string_lossy().into_owned();
        let mut args = vec!["worker", "--config", config.as_str()];
        args.extend_from_slice(extra);
        if !extra.iter().any(|arg| arg.starts_with("--metrics-addr")) {
            args.push("--no-metrics");
        }
        self.spawn_ready(&args, envs, "worker ready").await
    }

    /// Starts `messaging ARGS…` on this namespace with more environment
    /// variables, and waits for a stderr line containing `ready`.
    pub async fn spawn_ready(&self, args: &[&str], envs: &[(&str, &str)], ready: &str) -> Worker {
        let mut child = self
            .command(args)
            .envs(envs.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|error| panic!("`messaging {}` starts: {error}", args.join(" ")));
        let stderr = child.stderr.take().expect("stderr is piped");
        let (lines_tx, lines) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut reader = BufReader::new(stderr).lines();
            while let Ok(Some(line)) = reader.next_line().await {
                if lines_tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut process = Worker {
            child,
            lines,
            log: Vec::new(),
        };
        process.wait_for_line(ready).await;
        process
    }

    /// Polls `check` every 50 ms until it returns a value, up to [`DEADLINE`].
    pub async fn eventually<T, F, Fut>(&self, what: &str, check: F) -> T
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Option<T>>,
    {
        messaging_test_support::eventually(what, DEADLINE, Duration::from_millis(50), check).await
    }

    /// The user's inbox, read with `messaging inbox USER --json`.
    pub async fn inbox(&self, user: &str) -> Value {
        self.json(&["inbox", user, "--json"]).await
    }

    /// Notifications recorded as `sent` in this test's schema.
    pub async fn sent_notifications(&self) -> i64 {
        let count = format!(
            "SELECT count(*) FROM {}.notifications WHERE status = 'sent'",
            self.schema
        );
        sqlx::query_scalar(sqlx::AssertSqlSafe(count))
            .fetch_one(&self.pool)
            .await
            .unwrap_or(0)
    }

    /// The first column of the first row of `sql`, in which `{schema}` stands
    /// for this test's schema (0 when the query fails: the schema is not there yet).
    pub async fn count(&self, sql: &str) -> i64 {
        let sql = sql.replace("{schema}", &self.schema);
        sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .fetch_one(&self.pool)
            .await
            .unwrap_or(0)
    }

    /// Rows of `sql` as (text, count) pairs, `{schema}` as in [`Env::count`].
    pub async fn counts(&self, sql: &str) -> Vec<(String, i64)> {
        let sql = sql.replace("{schema}", &self.schema);
        sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .fetch_all(&self.pool)
            .await
            .expect("the query runs")
    }

    /// Removes the Redis keys and the schema of this test.
    pub async fn cleanup(self) {
        // Subscriptions first: a running one would re-create a deleted topic's
        // stream and group (its read recovers from NOGROUP) after the deletion.
        self.messaging.shutdown().await;
        // Partitioned and priority topics (made by the CLI) through a service
        // that knows them, so their registry entries go too.
        if let Ok(backend) = RedisBackend::connect(
            RedisBackendConfig::new(&self.redis).with_key_prefix(&self.prefix),
        )
        .await
        {
            let partitioned =
                MessagingService::new(Arc::new(messaging_core::Partitioned::new(backend)));
            for topic in partitioned.list_topics().await.unwrap_or_default() {
                let _ = partitioned.delete_topic(topic.as_str()).await;
            }
        }
        for topic in self.messaging.list_topics().await.unwrap_or_default() {
            let _ = self.messaging.delete_topic(&topic).await;
        }
        let drop = format!("DROP SCHEMA IF EXISTS {} CASCADE", self.schema);
        sqlx::raw_sql(sqlx::AssertSqlSafe(drop))
            .execute(&self.pool)
            .await
            .expect("the test schema is dropped");
        self.pool.close().await;
        let _ = std::fs::remove_file(&self.config_file);
    }
}

/// Runs `test` in a fresh [`Env`] and removes the namespace afterwards, even
/// when the test fails.
pub async fn run<F>(test: F)
where
    F: for<'a> FnOnce(&'a Env) -> std::pin::Pin<Box<dyn Future<Output = ()> + Send + 'a>>,
{
    run_in(Env::start().await, test).await;
}

/// [`run`] on the Redis Cluster of `REDIS_CLUSTER_URL`: the worker and every
/// command get the cluster URL.
pub async fn run_on_cluster<F>(test: F)
where
    F: for<'a> FnOnce(&'a Env) -> std::pin::Pin<Box<dyn Future<Output = ()> + Send + 'a>>,
{
    run_in(
        Env::start_on(messaging_test_support::redis_cluster_url()).await,
        test,
    )
    .await;
}

async fn run_in<F>(env: Env, test: F)
where
    F: for<'a> FnOnce(&'a Env) -> std::pin::Pin<Box<dyn Future<Output = ()> + Send + 'a>>,
{
    use futures::FutureExt;
    let outcome = std::panic::AssertUnwindSafe(test(&env))
        .catch_unwind()
        .await;
    env.cleanup().await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

/// Postfix's `smtp-sink` on a loopback port, dumping every message it accepts
/// into its own file.
pub struct PostfixSink {
    child: tokio::process::Child,
    port: u16,
    dir: PathBuf,
}

impl PostfixSink {
    /// Starts it on a free loopback port, failing loudly when it is not installed.
    pub async fn start() -> Self {
        assert!(
            Path::new(SMTP_SINK).exists(),
            "{SMTP_SINK} is missing: install Debian's `postfix` package (scripts/ci-prepare.sh does)"
        );
        let dir = std::env::temp_dir().join(format!("smtp-sink-{}", uuid::Uuid::now_v7().simple()));
        std::fs::create_dir_all(&dir).expect("the dump directory is made");
        // A free loopback port: bind, read it, let go.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free port")
            .port();
        // `%H%M%S.` + smtp-sink's random hex: one file per message.
        let template = format!("{}/%H%M%S.", dir.display());
        let child = tokio::process::Command::new(SMTP_SINK)
            .args(["-u", &current_user(), "-d", &template])
            .arg(format!("127.0.0.1:{port}"))
            .arg("1000")
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

    /// Its port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Every message it accepted, in no particular order.
    ///
    /// smtp-sink opens a message's file at `MAIL FROM` and writes it through a
    /// 4 KiB buffer, all at once for a message under that size when the
    /// transaction ends: an empty file is a transaction in progress or aborted
    /// (a client killed mid-`DATA`), not a message. The messages of these tests
    /// are smaller; a larger one would be read half-written, so it fails the test.
    pub fn mails(&self) -> Vec<DumpedMail> {
        let mut mails = Vec::new();
        for entry in std::fs::read_dir(&self.dir).expect("the dump directory is read") {
            let text = std::fs::read_to_string(entry.expect("a dump file").path())
                .expect("a dump file is read");
            if text.is_empty() {
                continue;
            }
            assert!(
                text.len() < 4096,
                "a dumped message of {} bytes may be half-written when read",
                text.len()
            );
            let mut mail = DumpedMail {
                raw: text.clone(),
                ..DumpedMail::default()
            };
            for line in text.lines() {
                if let Some(rcpt) = line.strip_prefix("X-Rcpt-Args: <") {
                    mail.recipients
                        .push(rcpt.split('>').next().unwrap_or_default().to_owned());
                } else if let Some(subject) = line.strip_prefix("Subject: ") {
                    mail.subject.get_or_insert_with(|| subject.to_owned());
                }
            }
            mails.push(mail);
        }
        mails
    }

    /// How many messages each recipient received.
    pub fn received(&self) -> BTreeMap<String, usize> {
        let mut per_recipient = BTreeMap::new();
        for mail in self.mails() {
            for rcpt in mail.recipients {
                *per_recipient.entry(rcpt).or_insert(0) += 1;
            }
        }
        per_recipient
    }

    /// Waits until it has accepted `count` messages, up to [`DEADLINE`].
    pub async fn wait_for_mails(&self, count: usize) -> Vec<DumpedMail> {
        let deadline = tokio::time::Instant::now() + DEADLINE;
        loop {
            let mails = self.mails();
            if mails.len() >= count {
                return mails;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "smtp-sink received {} of {count} messages",
                mails.len()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for PostfixSink {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// smtp-sink drops privileges to `-u USER`: the user running the test.
fn current_user() -> String {
    std::env::var("USER")
        .ok()
        .filter(|user| !user.is_empty())
        .or_else(|| {
            std::process::Command::new("id")
                .arg("-un")
                .output()
                .ok()
                .map(|output| String::from_utf8_lossy(&output.stdout).trim().to_owned())
        })
        .unwrap_or_else(|| "root".to_owned())
}

/// One message as Postfix's `smtp-sink` dumped it.
#[derive(Debug, Default, Clone)]
pub struct DumpedMail {
    /// The envelope recipients (`RCPT TO`).
    pub recipients: Vec<String>,
    /// The `Subject:` header, as sent.
    pub subject: Option<String>,
    /// The whole dump (smtp-sink's `X-*` lines, then the message).
    pub raw: String,
}

impl DumpedMail {
    /// The value of header `name` (case-insensitive), unfolded.
    pub fn header(&self, name: &str) -> Option<String> {
        let mut found: Option<String> = None;
        let mut in_it = false;
        for line in self.raw.lines() {
            if line.is_empty() {
                break;
            }
            if in_it && (line.starts_with(' ') || line.starts_with('\t')) {
                if let Some(value) = found.as_mut() {
                    value.push(' ');
                    value.push_str(line.trim());
                }
                continue;
            }
            in_it = false;
            if found.is_none()
                && let Some((key, value)) = line.split_once(':')
                && key.eq_ignore_ascii_case(name)
            {
                found = Some(value.trim().to_owned());
                in_it = true;
            }
        }
        found
    }
}

/// A small HTTP provider on loopback: answers every request `200 {"id": …}`
/// (or the status given to [`HttpProvider::start_answering`]) and hands each
/// request's body to the test.
pub struct HttpProvider {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    bodies: tokio::sync::mpsc::UnboundedReceiver<(String, String, std::time::Instant)>,
}

impl HttpProvider {
    /// Binds 127.0.0.1:0 and serves until the test ends.
    pub async fn start() -> Self {
        Self::start_answering(200).await
    }

    /// [`HttpProvider::start`], answering every request with `status` (e.g.
    /// 503: a provider that is down and did not take the message).
    pub async fn start_answering(status: u16) -> Self {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (sender, bodies) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let sender = sender.clone();
                tokio::spawn(async move {
                    let mut buffer = Vec::new();
                    let mut chunk = [0u8; 4096];
                    // Read the head, then Content-Length bytes of body.
                    let (head_end, length) = loop {
                        let read = stream.read(&mut chunk).await.unwrap_or(0);
                        if read == 0 {
                            return;
                        }
                        buffer.extend_from_slice(&chunk[..read]);
                        if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                            let head = String::from_utf8_lossy(&buffer[..end]).to_ascii_lowercase();
                            let length = head
                                .lines()
                                .find_map(|line| line.strip_prefix("content-length:"))
                                .and_then(|value| value.trim().parse::<usize>().ok())
                                .unwrap_or(0);
                            break (end + 4, length);
                        }
                    };
                    while buffer.len() < head_end + length {
                        let read = stream.read(&mut chunk).await.unwrap_or(0);
                        if read == 0 {
                            return;
                        }
                        buffer.extend_from_slice(&chunk[..read]);
                    }
                    let head = String::from_utf8_lossy(&buffer[..head_end]).into_owned();
                    let body =
                        String::from_utf8_lossy(&buffer[head_end..head_end + length]).into_owned();
                    let _ = sender.send((head, body, std::time::Instant::now()));
                    let (reason, answer) = match status {
                        200 => ("OK", r#"{"id":"provider-1"}"#),
                        _ => ("Service Unavailable", r#"{"error":"unavailable"}"#),
                    };
                    let response = format!(
                        "HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{answer}",
                        answer.len()
                    );
                    let _ = stream.write_all(response.as_bytes()).await;
                });
            }
        });
        Self { url, bodies }
    }

    /// The next request: its head and its body.
    pub async fn next_request(&mut self) -> (String, String) {
        let (head, body, _) = self.next_timed_request().await;
        (head, body)
    }

    /// Every request received and not taken yet, without waiting.
    pub fn received_requests(&mut self) -> Vec<(String, String)> {
        let mut requests = Vec::new();
        while let Ok((head, body, _)) = self.bodies.try_recv() {
            requests.push((head, body));
        }
        requests
    }

    /// The next request, with when its body had arrived.
    pub async fn next_timed_request(&mut self) -> (String, String, std::time::Instant) {
        tokio::time::timeout(DEADLINE, self.bodies.recv())
            .await
            .expect("the provider is called")
            .expect("the provider runs")
    }
}

/// How a command ended.
#[derive(Debug)]
pub struct Outcome {
    /// The exit code.
    pub code: Option<i32>,
    /// What it printed on stdout.
    pub stdout: String,
    /// What it printed on stderr.
    pub stderr: String,
}

/// A running `messaging worker`.
pub struct Worker {
    child: Child,
    lines: tokio::sync::mpsc::UnboundedReceiver<String>,
    /// Every stderr line read so far.
    pub log: Vec<String>,
}

impl Worker {
    /// Waits for a stderr line containing `needle`.
    pub async fn wait_for_line(&mut self, needle: &str) {
        let deadline = tokio::time::Instant::now() + DEADLINE;
        loop {
            match tokio::time::timeout_at(deadline, self.lines.recv()).await {
                Ok(Some(line)) => {
                    let found = line.contains(needle);
                    self.log.push(line);
                    if found {
                        return;
                    }
                }
                Ok(None) => panic!(
                    "the worker exited before printing {needle:?}:\n{}",
                    self.log.join("\n")
                ),
                Err(_) => panic!(
                    "the worker did not print {needle:?}:\n{}",
                    self.log.join("\n")
                ),
            }
        }
    }

    /// SIGKILLs the worker (no shutdown of any kind) and waits until it is gone.
    pub async fn kill(mut self) -> Vec<String> {
        self.child.start_kill().expect("SIGKILL is sent");
        tokio::time::timeout(DEADLINE, self.child.wait())
            .await
            .expect("a killed worker is reaped")
            .expect("the worker's status");
        while let Ok(line) = self.lines.try_recv() {
            self.log.push(line);
        }
        self.log
    }

    /// Sends SIGTERM and waits for the exit code.
    pub async fn terminate(mut self) -> (Option<i32>, Vec<String>) {
        let pid = self.child.id().expect("the worker is running");
        let status = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success());
        let status = tokio::time::timeout(DEADLINE, self.child.wait())
            .await
            .expect("the worker stops after SIGTERM")
            .expect("the worker's status");
        while let Ok(line) = self.lines.try_recv() {
            self.log.push(line);
        }
        // The reader task may still hold the last lines.
        while let Ok(Some(line)) =
            tokio::time::timeout(Duration::from_secs(1), self.lines.recv()).await
        {
            self.log.push(line);
        }
        (status.code(), self.log)
    }
}

impl Env {
    /// Starts `messaging relay` on this namespace (its outbox in the test's
    /// schema) and waits until it is ready; stop it as a [`Worker`].
    pub async fn relay(&self, extra: &[&str]) -> Worker {
        let mut args = vec!["relay"];
        args.extend_from_slice(extra);
        self.spawn_ready(&args, &[], "relay ready").await
    }
}

/// `GET /metrics` over a plain TCP connection; `None` while nothing answers.
pub async fn scrape(addr: &str) -> Option<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.ok()?;
    stream
        .write_all(
            format!("GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
        .await
        .ok()?;
    let mut response = String::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_string(&mut response))
        .await
        .ok()?
        .ok()?;
    response.starts_with("HTTP/1.1 200").then_some(response)
}

/// The sum of the samples of counter `name` labelled with `topic`, in a
/// Prometheus text body (0 when there are none).
pub fn metric(body: &str, name: &str, topic: &str) -> f64 {
    let label = format!("topic=\"{topic}\"");
    body.lines()
        .filter(|line| line.starts_with(&format!("{name}{{")) && line.contains(&label))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}
