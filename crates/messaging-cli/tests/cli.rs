//! The `messaging` binary run as a user runs it: arguments in, output and exit
//! code out. Commands that need Redis are in `redis_cli.rs`.

use std::process::{Command, Output};

fn messaging(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_messaging"))
        .args(args)
        // The Makefile exports these; each test says what it wants instead.
        .env_remove("REDIS_URL")
        .env_remove("DATABASE_URL")
        .env_remove("MESSAGING_KEY_PREFIX")
        .env_remove("MESSAGING_CONFIG")
        .output()
        .expect("the messaging binary runs")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn help_lists_every_command_and_the_exit_codes() {
    let output = messaging(&["--help"]);
    assert_eq!(output.status.code(), Some(0));
    let help = String::from_utf8_lossy(&output.stdout);
    for command in [
        "worker",
        "publish",
        "tail",
        "topics",
        "stats",
        "dlq",
        "inbox",
        "suppressions",
        "demo",
    ] {
        assert!(help.contains(command), "{command} missing from:\n{help}");
    }
    assert!(
        help.contains("3  a server (Redis, PostgreSQL, SMTP) could not be reached"),
        "{help}"
    );
}

#[test]
fn unknown_flags_are_a_usage_error() {
    let output = messaging(&["publish", "a.b", "--jsn", "{}"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("--jsn"), "{}", stderr(&output));
}

#[test]
fn malformed_json_is_a_usage_error_before_any_connection() {
    let output = messaging(&[
        "publish",
        "user.registered",
        "--json",
        "{not json",
        "--redis-url",
        "redis://127.0.0.1:1",
    ]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("malformed JSON payload"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn a_payload_must_be_an_object() {
    let output = messaging(&[
        "publish",
        "user.registered",
        "--json",
        "[1,2]",
        "--redis-url",
        "redis://127.0.0.1:1",
    ]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("payload must be a JSON object"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn invalid_topic_names_are_a_usage_error() {
    let output = messaging(&["publish", "bad topic", "--json", "{}"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("invalid topic"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn bad_durations_are_a_usage_error() {
    for delay in ["soon", "1000000years", "367days"] {
        let output = messaging(&["publish", "a.b", "--json", "{}", "--delay", delay]);
        // Once a panic (exit 101) for delays past what a date can hold.
        assert_eq!(
            output.status.code(),
            Some(2),
            "{delay}: {}",
            stderr(&output)
        );
        assert!(stderr(&output).contains("--delay"), "{}", stderr(&output));
    }
}

#[test]
fn shared_commands_without_redis_say_how_to_name_it() {
    for args in [
        &["publish", "a.b", "--json", "{}"][..],
        &["stats"],
        &["topics", "list"],
        &["dlq", "list", "a.b"],
        &["tail", "a.b"],
    ] {
        let output = messaging(args);
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        assert!(
            stderr(&output).contains("--redis-url URL or set REDIS_URL"),
            "{args:?}: {}",
            stderr(&output)
        );
    }
}

#[test]
fn an_unreachable_redis_exits_with_code_3() {
    // Port 1 on loopback: nothing listens there.
    let output = messaging(&["stats", "--redis-url", "redis://:hunter2@127.0.0.1:1"]);
    assert_eq!(output.status.code(), Some(3), "{}", stderr(&output));
    let message = stderr(&output);
    assert!(
        message.contains("cannot reach Redis at redis://:***@127.0.0.1:1"),
        "{message}"
    );
    assert!(
        !message.contains("hunter2"),
        "the password leaked: {message}"
    );
}

#[test]
fn destructive_commands_want_confirmation() {
    for args in [&["dlq", "purge", "a.b"][..], &["topics", "delete", "a.b"]] {
        let output = messaging(&[args, &["--redis-url", "redis://127.0.0.1:1"]].concat());
        assert_eq!(
            output.status.code(),
            Some(2),
            "{args:?}: {}",
            stderr(&output)
        );
        assert!(
            stderr(&output).contains("add --yes to confirm"),
            "{}",
            stderr(&output)
        );
    }
}

#[test]
fn a_missing_config_file_is_a_usage_error() {
    let output = messaging(&[
        "worker",
        "--config",
        "/nonexistent/messaging.toml",
        "--no-metrics",
    ]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("cannot read config file /nonexistent/messaging.toml"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn the_demo_runs_the_whole_pipeline_with_no_server() {
    let mail_file =
        std::env::temp_dir().join(format!("messaging-demo-{}.mbox", std::process::id()));
    let output = messaging(&["demo", "--mail-file", mail_file.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{stdout}\n{}",
        stderr(&output)
    );
    for step in [
        "messaging demo on the in-memory backend, in-memory stores",
        "the SMTP server received an email for ada@example.com: subject \"Welcome, Ada!\"",
        "notification recorded for demo-ada: email \"Welcome, Ada!\", status sent, 1 unread",
        "attempt 3 (retry 2)",
        "dead-lettered after 3 attempts by group flaky-consumer",
        "delivered",
        "done: every step behaved as announced",
    ] {
        assert!(stdout.contains(step), "{step:?} missing from:\n{stdout}");
    }
    let mails = std::fs::read_to_string(&mail_file).unwrap();
    std::fs::remove_file(&mail_file).unwrap();
    assert!(mails.contains("Subject: Welcome, Ada!"), "{mails}");
}

#[test]
fn demo_on_real_servers_needs_both_urls() {
    let output = messaging(&["demo", "--redis", "redis://127.0.0.1:6379"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("--database"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn inbox_without_a_database_says_how_to_name_it() {
    let output = messaging(&["inbox", "u-1"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("--database-url URL or set DATABASE_URL"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn an_unreachable_database_exits_with_code_3() {
    let output = messaging(&[
        "inbox",
        "u-1",
        "--database-url",
        "postgres://postgres:pw@127.0.0.1:1/test",
    ]);
    assert_eq!(output.status.code(), Some(3), "{}", stderr(&output));
    assert!(
        stderr(&output)
            .contains("cannot reach PostgreSQL at postgres://postgres:***@127.0.0.1:1/test"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn the_worker_reports_unreachable_servers_with_code_3() {
    let output = messaging(&[
        "worker",
        "--no-metrics",
        "--redis-url",
        "redis://127.0.0.1:1",
    ]);
    assert_eq!(output.status.code(), Some(3), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("cannot reach Redis at redis://127.0.0.1:1"),
        "{}",
        stderr(&output)
    );

    let output = messaging(&[
        "worker",
        "--no-metrics",
        "--database-url",
        "postgres://postgres@127.0.0.1:1/test",
    ]);
    assert_eq!(output.status.code(), Some(3), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("cannot reach PostgreSQL"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn a_taken_metrics_port_is_a_usage_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let output = messaging(&["worker", "--metrics-addr", &addr]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(
        stderr(&output).contains(&format!("cannot serve metrics on {addr}")),
        "{}",
        stderr(&output)
    );
}

#[test]
fn help_never_shows_the_urls_from_the_environment() {
    let output = Command::new(env!("CARGO_BIN_EXE_messaging"))
        .args(["worker", "--help"])
        .env("REDIS_URL", "redis://:hunter2@127.0.0.1:6379")
        .env("DATABASE_URL", "postgres://app:hunter3@127.0.0.1/db")
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&output.stdout);
    assert!(help.contains("[env: REDIS_URL]"), "{help}");
    assert!(
        !help.contains("hunter2") && !help.contains("hunter3"),
        "{help}"
    );
}

#[test]
fn a_bad_log_filter_is_a_usage_error() {
    // Once accepted silently with exit 0.
    let output = messaging(&["--log", "messaging=[[[", "topics", "list"]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(stderr(&output).contains("--log"), "{}", stderr(&output));
}

#[test]
fn passwords_never_reach_the_terminal() {
    let secret = "Zx9/Qm+kL2";
    // An unencoded `/` in the password: a usage error, not "unreachable" (exit
    // 3) with the password in the message.
    let url = format!("redis://app:{secret}@127.0.0.1:6379/0");
    let output = messaging(&["stats", "--redis-url", &url]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("percent-encode"),
        "{}",
        stderr(&output)
    );
    // A port nothing listens on, with the password in every URL form.
    for args in [
        vec![
            "stats".to_owned(),
            "--redis-url".to_owned(),
            "redis://app:Zx9Qm@127.0.0.1:1/0".to_owned(),
        ],
        vec![
            "stats".to_owned(),
            "--redis-url".to_owned(),
            "redis+unix:///nonexistent.sock?pass=Zx9Qm".to_owned(),
        ],
        vec![
            "inbox".to_owned(),
            "u1".to_owned(),
            "--database-url".to_owned(),
            "postgres://app@127.0.0.1:1/test?password=Zx9Qm".to_owned(),
        ],
        vec![
            "inbox".to_owned(),
            "u1".to_owned(),
            "--database-url".to_owned(),
            "postgres://app:Zx9Qm@127.0.0.1:1/test".to_owned(),
        ],
    ] {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let output = messaging(&args);
        assert_ne!(output.status.code(), Some(0), "{args:?}");
        let shown = format!(
            "{}{}",
            stderr(&output),
            String::from_utf8_lossy(&output.stdout)
        );
        assert!(!shown.contains("Zx9"), "{args:?}: {shown}");
        assert!(!shown.contains("panicked"), "{args:?}: {shown}");
    }
}
