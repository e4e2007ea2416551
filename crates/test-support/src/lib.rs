//! Where the workspace's tests find Redis and PostgreSQL.
//!
//! Unpublished (`publish = false`): it is the test harness of this workspace,
//! not an API for users' own tests (they have `testcontainers` for that).
//!
//! Each service is looked up in this order, once per test process:
//!
//! 1. the environment: `REDIS_URL` / `DATABASE_URL` (what `make test` and CI
//!    set, pointing at the machine's servers);
//! 2. otherwise, when a Docker engine answers (`DOCKER_HOST`, else
//!    `/var/run/docker.sock`, pinged with `GET /_ping`), a container started with
//!    `testcontainers` (the `redis` and `postgres` modules), kept for the rest of
//!    the process (feature `containers`, on by default);
//! 3. otherwise the test fails with a message saying how to provide one.
//!
//! ```
//! use messaging_test_support::{Selection, Service, select};
//!
//! // The environment wins, whatever the engine would say.
//! let chosen = select(Service::Redis, Some("redis://127.0.0.1:6379".into()), || true);
//! assert_eq!(chosen, Selection::Env("redis://127.0.0.1:6379".into()));
//!
//! // Nothing set and no engine: a failure that says what to do.
//! let Selection::Unavailable(message) = select(Service::Postgres, None, || false) else {
//!     unreachable!()
//! };
//! assert!(message.contains("DATABASE_URL"));
//! ```

use std::io::{Read, Write};
use std::sync::OnceLock;
use std::time::Duration;

/// A server the tests need.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    /// Redis 7 (`REDIS_URL`).
    Redis,
    /// PostgreSQL 15 (`DATABASE_URL`).
    Postgres,
}

impl Service {
    /// The environment variable that names the server.
    pub fn env_var(self) -> &'static str {
        match self {
            Self::Redis => "REDIS_URL",
            Self::Postgres => "DATABASE_URL",
        }
    }

    fn example(self) -> &'static str {
        match self {
            Self::Redis => "redis://127.0.0.1:6379",
            Self::Postgres => "postgres://postgres@127.0.0.1:5432/test",
        }
    }
}

/// Where a service comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection {
    /// The URL the environment gave.
    Env(String),
    /// No URL in the environment and a Docker engine answers: start a container.
    Container,
    /// Neither: the message to fail the test with.
    Unavailable(String),
}

/// The selection rule, separate from its inputs so it can be tested: `env` is
/// the environment variable's value, `engine_answers` says whether a Docker
/// engine responds (only asked when the environment names nothing).
pub fn select(
    service: Service,
    env: Option<String>,
    engine_answers: impl FnOnce() -> bool,
) -> Selection {
    match env {
        Some(url) if !url.trim().is_empty() => Selection::Env(url),
        _ if engine_answers() => Selection::Container,
        _ => Selection::Unavailable(format!(
            "{var} is not set and no Docker engine answers. These tests need a real {name}: \
             start one and run with\n  export {var}={example}\n\
             (`make test` sets it to the local server), or start a Docker engine so the \
             tests run one with testcontainers",
            var = service.env_var(),
            name = match service {
                Service::Redis => "Redis",
                Service::Postgres => "PostgreSQL",
            },
            example = service.example(),
        )),
    }
}

/// Whether a Docker engine answers `GET /_ping` within a second, at
/// `DOCKER_HOST` (`unix://` or `tcp://`) or else `/var/run/docker.sock`.
pub fn docker_engine_answers() -> bool {
    let host = std::env::var("DOCKER_HOST").unwrap_or_default();
    let timeout = Duration::from_secs(1);
    let request = b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n";
    let mut reply = Vec::new();
    let answered = if let Some(address) = host.strip_prefix("tcp://") {
        use std::net::ToSocketAddrs;
        let Some(address) = address.to_socket_addrs().ok().and_then(|mut a| a.next()) else {
            return false;
        };
        std::net::TcpStream::connect_timeout(&address, timeout).and_then(|mut stream| {
            stream.set_read_timeout(Some(timeout))?;
            stream.write_all(request)?;
            stream.read_to_end(&mut reply)
        })
    } else {
        let path = host
            .strip_prefix("unix://")
            .unwrap_or("/var/run/docker.sock")
            .to_owned();
        std::os::unix::net::UnixStream::connect(path).and_then(|mut stream| {
            stream.set_read_timeout(Some(timeout))?;
            stream.set_write_timeout(Some(timeout))?;
            stream.write_all(request)?;
            stream.read_to_end(&mut reply)
        })
    };
    answered.is_ok() && reply.starts_with(b"HTTP/1.") && reply.windows(2).any(|w| w == b"OK")
}

/// The Redis under test (see the crate's doc for the order). Panics with the
/// reason when there is none: a test without its server fails, loudly.
pub fn redis_url() -> String {
    static URL: OnceLock<String> = OnceLock::new();
    URL.get_or_init(|| resolve(Service::Redis)).clone()
}

/// The PostgreSQL under test (see the crate's doc for the order). Panics with
/// the reason when there is none.
pub fn database_url() -> String {
    static URL: OnceLock<String> = OnceLock::new();
    URL.get_or_init(|| resolve(Service::Postgres)).clone()
}

/// The Redis Cluster under test: `REDIS_CLUSTER_URL`
/// (`redis+cluster://host:port,…`), which `make test` and CI set after starting
/// one with `scripts/redis-cluster.sh start`. Panics saying so when it is unset.
pub fn redis_cluster_url() -> String {
    std::env::var("REDIS_CLUSTER_URL").unwrap_or_else(|_| {
        panic!(
            "REDIS_CLUSTER_URL is not set: start a cluster on loopback with \
             `scripts/redis-cluster.sh start` and export the URL it prints \
             (REDIS_CLUSTER_URL=redis+cluster://127.0.0.1:7101,127.0.0.1:7102,127.0.0.1:7103), \
             or run `make test`, which does both"
        )
    })
}

/// Polls `check` every `every` until it returns a value, and fails the test
/// naming `what` once `deadline` has passed: the one wait for an outcome that
/// has no signal to wait on (a row in a database, a key in Redis).
pub async fn eventually<T, F, Fut>(what: &str, deadline: Duration, every: Duration, check: F) -> T
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let until = tokio::time::Instant::now() + deadline;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < until,
            "gave up waiting for {what} after {deadline:?}"
        );
        tokio::time::sleep(every).await;
    }
}

fn resolve(service: Service) -> String {
    match select(
        service,
        std::env::var(service.env_var()).ok(),
        docker_engine_answers,
    ) {
        Selection::Env(url) => url,
        Selection::Container => containers::start(service),
        Selection::Unavailable(message) => panic!("{message}"),
    }
}

#[cfg(feature = "containers")]
mod containers {
    use std::sync::Mutex;

    use testcontainers_modules::testcontainers::runners::SyncRunner;
    use testcontainers_modules::testcontainers::{Container, ImageExt};
    use testcontainers_modules::{postgres::Postgres, redis::Redis};

    use super::Service;

    /// Containers started by this process, kept until it exits.
    static KEPT: Mutex<Vec<Box<dyn std::any::Any + Send>>> = Mutex::new(Vec::new());

    /// Starts the service's container (on a thread of its own, so it works
    /// from inside a test's async runtime too) and returns its URL.
    pub(super) fn start(service: Service) -> String {
        std::thread::spawn(move || match service {
            Service::Redis => {
                let container = Redis::default()
                    .with_tag("7")
                    .start()
                    .unwrap_or_else(|error| panic!("cannot start a Redis container: {error}"));
                let url = url_of(&container, 6379, |host, port| {
                    format!("redis://{host}:{port}")
                });
                KEPT.lock().unwrap().push(Box::new(container));
                url
            }
            Service::Postgres => {
                let container = Postgres::default()
                    .with_db_name("test")
                    .with_host_auth()
                    .with_tag("15")
                    .start()
                    .unwrap_or_else(|error| panic!("cannot start a PostgreSQL container: {error}"));
                let url = url_of(&container, 5432, |host, port| {
                    format!("postgres://postgres@{host}:{port}/test")
                });
                KEPT.lock().unwrap().push(Box::new(container));
                url
            }
        })
        .join()
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    }

    fn url_of<I: testcontainers_modules::testcontainers::Image>(
        container: &Container<I>,
        port: u16,
        url: impl Fn(String, u16) -> String,
    ) -> String {
        let host = container
            .get_host()
            .unwrap_or_else(|error| panic!("container host: {error}"));
        let port = container
            .get_host_port_ipv4(port)
            .unwrap_or_else(|error| panic!("container port: {error}"));
        url(host.to_string(), port)
    }
}

#[cfg(not(feature = "containers"))]
mod containers {
    use super::Service;

    pub(super) fn start(service: Service) -> String {
        panic!(
            "{} is not set; a Docker engine answers, but this build has no `containers` feature",
            service.env_var()
        )
    }
}
