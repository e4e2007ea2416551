//! The selection rule: the environment wins, an answering engine is asked only
//! when the environment names nothing, and without either the failure says how
//! to provide the server.

use std::cell::Cell;

use messaging_test_support::{Selection, Service, docker_engine_answers, select};

#[test]
fn the_environment_wins_and_the_engine_is_not_asked() {
    let asked = Cell::new(false);
    let chosen = select(
        Service::Redis,
        Some("redis://127.0.0.1:6390".into()),
        || {
            asked.set(true);
            true
        },
    );
    assert_eq!(chosen, Selection::Env("redis://127.0.0.1:6390".into()));
    assert!(!asked.get());
}

#[test]
fn an_empty_variable_counts_as_unset() {
    assert_eq!(
        select(Service::Postgres, Some("  ".into()), || true),
        Selection::Container
    );
}

#[test]
fn without_the_environment_an_answering_engine_means_a_container() {
    assert_eq!(select(Service::Redis, None, || true), Selection::Container);
}

#[test]
fn neither_gives_the_clear_failure() {
    for (service, var, name) in [
        (Service::Redis, "REDIS_URL", "Redis"),
        (Service::Postgres, "DATABASE_URL", "PostgreSQL"),
    ] {
        let Selection::Unavailable(message) = select(service, None, || false) else {
            panic!("{service:?} without env and engine must be unavailable");
        };
        assert!(message.contains(var), "{message}");
        assert!(message.contains(name), "{message}");
        assert!(message.contains("export"), "{message}");
    }
}

#[test]
fn no_engine_here_is_detected_as_none() {
    // A DOCKER_HOST socket that nothing listens on never counts as an engine.
    let dir = std::env::temp_dir().join(format!("no-docker-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let socket = dir.join("docker.sock");
    // `set_var` is unsafe in edition 2024: the probe runs in a child process
    // with its own DOCKER_HOST instead.
    let status = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "probe_child", "--nocapture"])
        .env("DOCKER_HOST", format!("unix://{}", socket.display()))
        .env("PROBE_EXPECT", "false")
        .status()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(status.success());
}

/// Run by `no_engine_here_is_detected_as_none` in a child with its own
/// `DOCKER_HOST`; alone it checks nothing.
#[test]
fn probe_child() {
    if let Ok(expected) = std::env::var("PROBE_EXPECT") {
        assert_eq!(docker_engine_answers().to_string(), expected);
    }
}

#[test]
fn a_server_that_is_not_docker_is_not_an_engine() {
    // Something answers on the port, but not with HTTP: not an engine.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = std::thread::spawn(move || {
        if let Ok((mut stream, _)) = listener.accept() {
            use std::io::{Read, Write};
            let mut buf = [0u8; 64];
            let _ = stream.read(&mut buf);
            let _ = stream.write_all(b"-ERR not docker\r\n");
        }
    });
    let status = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "probe_child", "--nocapture"])
        .env("DOCKER_HOST", format!("tcp://127.0.0.1:{port}"))
        .env("PROBE_EXPECT", "false")
        .status()
        .unwrap();
    server.join().unwrap();
    assert!(status.success());
}

#[test]
fn an_engine_answering_the_ping_is_detected() {
    // What dockerd answers to `GET /_ping`.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = std::thread::spawn(move || {
        if let Ok((mut stream, _)) = listener.accept() {
            use std::io::{Read, Write};
            let mut buf = [0u8; 256];
            let n = stream.read(&mut buf).unwrap_or(0);
            assert!(buf[..n].starts_with(b"GET /_ping "));
            let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nOK");
        }
    });
    let status = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "probe_child", "--nocapture"])
        .env("DOCKER_HOST", format!("tcp://127.0.0.1:{port}"))
        .env("PROBE_EXPECT", "true")
        .status()
        .unwrap();
    server.join().unwrap();
    assert!(status.success());
}

#[tokio::test]
async fn eventually_returns_the_first_value_and_gives_up_at_the_deadline() {
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::time::Duration;
    let calls = AtomicU32::new(0);
    let value = messaging_test_support::eventually(
        "the third call",
        Duration::from_secs(30),
        Duration::from_millis(1),
        || async { (calls.fetch_add(1, Ordering::SeqCst) == 2).then_some(7) },
    )
    .await;
    assert_eq!((value, calls.load(Ordering::SeqCst)), (7, 3));
    let never = tokio::spawn(messaging_test_support::eventually(
        "nothing",
        Duration::from_millis(20),
        Duration::from_millis(1),
        || async { None::<()> },
    ));
    let failure = never.await.unwrap_err();
    assert!(failure.is_panic());
}
