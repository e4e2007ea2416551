//! Test harness: redis-server processes on free loopback ports, child processes
//! made by re-running the test binary, and connecting backends.
#![allow(dead_code, unreachable_pub)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use messaging_redis::{RedisBackend, RedisBackendConfig};

pub mod churn;
pub mod cluster;

/// The redis-server binary: `REDIS_SERVER` or `/usr/bin/redis-server`.
pub fn redis_server_binary() -> PathBuf {
    std::env::var_os("REDIS_SERVER")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/redis-server"))
}

/// A redis-server this test started; killed (SIGKILL) and its directory
/// removed on drop.
pub struct RedisServer {
    pub port: u16,
    dir: PathBuf,
    args: Vec<String>,
    child: Option<Child>,
}

impl RedisServer {
    /// Starts a server without persistence.
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// Starts a server with `extra` arguments (`["--appendonly", "yes"]`).
    pub fn start_with(extra: &[&str]) -> Self {
        let dir = unique_dir("redis");
        for _ in 0..20 {
            let port = free_port();
            let mut server = Self {
                port,
                dir: dir.clone(),
                args: extra.iter().map(|arg| (*arg).to_owned()).collect(),
                child: None,
            };
            if server.spawn() {
                return server;
            }
        }
        panic!(
            "could not start {} on a free port",
            redis_server_binary().display()
        );
    }

    fn spawn(&mut self) -> bool {
        let binary = redis_server_binary();
        let mut command = Command::new(&binary);
        command
            .arg("--port")
            .arg(self.port.to_string())
            .args(["--bind", "127.0.0.1", "--save", "", "--daemonize", "no"])
            .arg("--dir")
            .arg(&self.dir)
            .arg("--logfile")
            .arg(self.dir.join("redis.log"))
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let mut child = command
            .spawn()
            .unwrap_or_else(|error| panic!("cannot run {}: {error}", binary.display()));
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return false; // the port was taken, most likely
            }
            if ping(self.port) {
                self.child = Some(child);
                return true;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = child.kill();
        let _ = child.wait();
        false
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// SIGKILL: no shutdown, no last write.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port and directory (AOF files are replayed).
    pub fn restart(&mut self) {
        self.kill();
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.spawn() {
            assert!(
                Instant::now() < deadline,
                "could not restart redis-server on port {}",
                self.port
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Runs one command through the raw protocol and returns the reply's text.
    pub fn command(&self, args: &[&str]) -> String {
        raw_command(self.port, args)
            .unwrap_or_else(|error| panic!("redis command {args:?}: {error}"))
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("bind a free port")
}

fn unique_dir(what: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "messaging-redis-{what}-{}-{:016x}",
        std::process::id(),
        fastrand::u64(..)
    ));
    std::fs::create_dir_all(&dir).expect("create a temporary directory");
    dir
}

fn ping(port: u16) -> bool {
    raw_command(port, &["PING"]).is_ok_and(|reply| reply.contains("PONG"))
}

/// Sends one command in RESP and reads what comes back within a short time.
fn raw_command(port: u16, args: &[&str]) -> std::io::Result<String> {
    let mut stream =
        TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(200))?;
    stream.set_read_timeout(Some(Duration::from_millis(500)))?;
    let mut request = format!("*{}\r\n", args.len());
    for arg in args {
        request.push_str(&format!("${}\r\n{arg}\r\n", arg.len()));
    }
    stream.write_all(request.as_bytes())?;
    let mut reply = vec![0u8; 64 * 1024];
    let read = stream.read(&mut reply)?;
    if read == 0 {
        return Err(std::io::Error::other("connection closed"));
    }
    Ok(String::from_utf8_lossy(&reply[..read]).into_owned())
}

/// A plain `redis` connection, not this library: what another producer, an
/// operator's `redis-cli` or a test's inspection uses.
pub async fn raw(url: &str) -> redis::aio::MultiplexedConnection {
    redis::Client::open(url)
        .expect("redis url")
        .get_multiplexed_async_connection()
        .await
        .expect("connect")
}

/// A backend on `url` under a fresh key prefix.
pub async fn backend(url: &str) -> RedisBackend {
    backend_with(RedisBackendConfig::new(url).with_key_prefix(unique_prefix())).await
}

pub async fn backend_with(config: RedisBackendConfig) -> RedisBackend {
    RedisBackend::connect(config.clone())
        .await
        .unwrap_or_else(|error| panic!("connect to {config:?}: {error}"))
}

/// A fresh temporary directory (removed by the caller, or left in /tmp).
pub fn temp_dir(what: &str) -> PathBuf {
    unique_dir(what)
}

pub fn unique_prefix() -> String {
    format!("test-{:016x}", fastrand::u64(..))
}

/// The Redis under test: `REDIS_URL`, else a container when a Docker engine
/// answers, else a failure that says how to provide one (`messaging-test-support`).
pub fn redis_url() -> String {
    messaging_test_support::redis_url()
}

/// Env var telling a re-run test binary which child role to play.
pub const CHILD_ROLE: &str = "MESSAGING_REDIS_TEST_CHILD";

/// A copy of this test binary running only `entry` (a test that plays the role
/// named in `CHILD_ROLE`); killed with SIGKILL on drop.
pub struct ChildProcess {
    child: Option<Child>,
    role: String,
    entry: String,
    env: Vec<(String, String)>,
}

impl ChildProcess {
    pub fn spawn(entry: &str, role: &str, env: &[(&str, String)]) -> Self {
        let mut child = Self {
            child: None,
            role: role.to_owned(),
            entry: entry.to_owned(),
            env: env
                .iter()
                .map(|(k, v)| ((*k).to_owned(), v.clone()))
                .collect(),
        };
        child.start();
        child
    }

    fn start(&mut self) {
        let exe = std::env::current_exe().expect("the test binary's path");
        let mut command = Command::new(exe);
        command
            .args([
                self.entry.as_str(),
                "--exact",
                "--nocapture",
                "--test-threads",
                "1",
            ])
            .env(CHILD_ROLE, &self.role)
            .stdin(Stdio::null())
            .stdout(Stdio::null());
        if std::env::var_os("TEST_CHILD_LOGS").is_none() {
            command.stderr(Stdio::null());
        }
        for (key, value) in &self.env {
            command.env(key, value);
        }
        self.child = Some(command.spawn().expect("spawn a child test process"));
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(Child::id).expect("a running child")
    }

    /// SIGKILL, then wait for it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Kills it and starts it again with the same role and environment.
    pub fn restart(&mut self) {
        self.kill();
        self.start();
    }

    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.pid().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{signal} failed");
    }

    /// Waits for it to exit by itself; true when it succeeded.
    pub fn wait_success(&mut self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                self.child = None;
                return status.success();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    /// True when it exited already.
    pub fn exited(&mut self) -> bool {
        self.child
            .as_mut()
            .is_none_or(|child| matches!(child.try_wait(), Ok(Some(_))))
    }
}

impl Drop for ChildProcess {
    fn drop(&mut self) {
        if let Some(child) = &self.child {
            // A stopped process must be continued to die of anything but SIGKILL;
            // SIGKILL works regardless.
            let _ = Command::new("kill")
                .arg("-CONT")
                .arg(child.id().to_string())
                .status();
        }
        self.kill();
    }
}

/// Polls `probe` until it returns `Some` or `limit` passes.
pub async fn wait_for<T, F, Fut>(what: &str, limit: Duration, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(
            start.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A checked topic of a test's name (the backend traits take a `Topic`).
#[allow(dead_code)]
pub fn topic(name: impl AsRef<str>) -> messaging_model::Topic {
    messaging_model::Topic::new(name.as_ref()).expect("a valid test topic")
}

/// Consumer `name` of `group` on `topic`.
#[allow(dead_code)]
pub fn consumer(topic: impl AsRef<str>, group: &str, name: &str) -> messaging_core::ConsumerId {
    messaging_core::ConsumerId::new(self::topic(topic), group, name)
}

/// Writes a test CA (`ca.crt`) and a server certificate for 127.0.0.1 and
/// localhost signed by it (`server.crt`, `server.key`) into `dir`, with openssl.
pub fn make_test_certificates(dir: &Path) {
    let openssl = |args: &[&str]| {
        let status = std::process::Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .expect("run openssl (needed to make the test certificates)");
        assert!(status.success(), "openssl {args:?} failed");
    };
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        "-days",
        "2",
        "-subj",
        "/CN=messaging-redis test CA",
    ]);
    openssl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=127.0.0.1",
    ]);
    std::fs::write(
        dir.join("san.ext"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\n",
    )
    .expect("write san.ext");
    openssl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.crt",
        "-days",
        "2",
        "-extfile",
        "san.ext",
    ]);
}

/// A cluster of its own, started with `scripts/redis-cluster.sh` on six free
/// ports (and their bus ports) and stopped, its files removed, on drop.
pub struct OwnCluster {
    base: u16,
    dir: PathBuf,
    tls: Option<PathBuf>,
}

impl OwnCluster {
    fn script() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/redis-cluster.sh")
    }

    fn free(port: u16) -> bool {
        std::net::TcpListener::bind(("127.0.0.1", port)).is_ok()
    }

    /// Starts one (speaking only TLS with the certificates of `tls`, when
    /// given) and returns it with its URL.
    pub fn start(tls: Option<&Path>) -> (Self, String) {
        let base = (7301..7900)
            .step_by(6)
            .find(|base| (0..6).all(|i| Self::free(base + i) && Self::free(base + i + 10_000)))
            .expect("six free ports between 7301 and 7900");
        Self::start_on(base, tls)
    }

    /// Starts one on `base`..`base + 5` (and their bus ports), which must be free.
    pub fn start_on(base: u16, tls: Option<&Path>) -> (Self, String) {
        for port in base..base + 6 {
            assert!(
                Self::free(port) && Self::free(port + 10_000),
                "port {port} or {} is in use: the cluster on {base} cannot start",
                port + 10_000
            );
        }
        let dir = temp_dir("cluster");
        let cluster = Self {
            base,
            dir,
            tls: tls.map(Path::to_path_buf),
        };
        let output = cluster
            .command("start")
            .output()
            .expect("run scripts/redis-cluster.sh");
        assert!(
            output.status.success(),
            "redis-cluster.sh start failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let url = String::from_utf8_lossy(&output.stdout)
            .lines()
            .last()
            .expect("the script prints the URL")
            .to_owned();
        (cluster, url)
    }

    /// The first of its six ports.
    pub fn base(&self) -> u16 {
        self.base
    }

    fn command(&self, action: &str) -> std::process::Command {
        let mut command = std::process::Command::new("bash");
        command
            .arg(Self::script())
            .arg(action)
            .arg(self.base.to_string())
            .env("CLUSTER_DIR", self.dir.join("nodes"));
        if let Some(tls) = &self.tls {
            command.env("CLUSTER_TLS_DIR", tls);
        }
        command
    }
}

impl Drop for OwnCluster {
    fn drop(&mut self) {
        let _ = self.command("stop").output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The first seed node (`host:port`) of a `redis+cluster://` or
/// `rediss+cluster://` URL without credentials.
pub fn first_seed(cluster_url: &str) -> String {
    cluster_url
        .split_once("://")
        .map_or(cluster_url, |(_, nodes)| nodes)
        .split(',')
        .next()
        .expect("a cluster URL names a node")
        .to_owned()
}

/// Runs `work` on a two-thread runtime of its own: the body of a child role
/// (a test entry this binary is run again as).
pub fn run_child<F: std::future::Future>(work: F) -> F::Output {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(work)
}

/// `/proc/loadavg`'s three load averages, for a bench's first line.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

/// A backend on `url` (named by the environment variable `env_var`) under a
/// fresh prefix starting with `label`, trimming every 50 ms so a suite runs
/// with trims going on, configured further by `configure` (what the
/// conformance suites' factories share).
pub async fn suite_backend(
    env_var: &str,
    url: &str,
    label: &str,
    configure: impl FnOnce(RedisBackendConfig) -> RedisBackendConfig,
) -> std::sync::Arc<RedisBackend> {
    let prefix = format!(
        "{label}-{:016x}{:08x}",
        fastrand::u64(..),
        std::process::id()
    );
    let config = configure(
        RedisBackendConfig::new(url)
            .with_key_prefix(prefix)
            .with_trim_interval(Duration::from_millis(50)),
    );
    let backend = RedisBackend::connect(config)
        .await
        .unwrap_or_else(|error| panic!("cannot reach Redis at {env_var}={url}: {error}"));
    std::sync::Arc::new(backend)
}

/// `backend` with every topic recorded with `count` partitions at its first
/// use (the conformance suites' partitioned runs).
pub fn partitioned(
    backend: std::sync::Arc<RedisBackend>,
    count: u16,
) -> std::sync::Arc<messaging_core::Partitioned<RedisBackend>> {
    std::sync::Arc::new(
        messaging_core::Partitioned::from_arc(backend)
            .partitioning_new_topics(count)
            .expect("a partition count below 1024"),
    )
}
