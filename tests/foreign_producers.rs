//! Producers that are not this library: a separate process (`redis-cli`) XADDs
//! a minimal entry and a flat-fields entry onto the stream the real `messaging
//! worker` reads; the welcome email arrives for each (docs/redis.md, "Entry
//! format").
//!
//! Run: `cargo test -p messaging-cli --test foreign_producers`.

mod support;

use support::{DEADLINE, Env};

/// `redis-cli -u REDIS_URL ARGS…`, as another service's producer would write.
async fn redis_cli(args: &[&str]) -> String {
    let output = tokio::process::Command::new("redis-cli")
        .arg("-u")
        .arg(support::redis_url())
        .args(args)
        .output()
        .await
        .expect("redis-cli runs (install redis-tools)");
    assert!(output.status.success(), "{output:?}");
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_xadded_by_another_process_reach_the_welcome_rule() {
    support::run(|env| Box::pin(scenario(env))).await;
}

async fn scenario(env: &Env) {
    let worker = env.worker(&[]).await;
    let stream = format!("{{{}:user.registered}}:stream", env.prefix);

    // Minimal: `m` holds only the payload (and metadata).
    let id = redis_cli(&[
        "XADD",
        &stream,
        "*",
        "m",
        r#"{"payload":{"user_id":"u-min","email":"min@example.com","name":"Min"},"metadata":{"source":"php"}}"#,
    ])
    .await;
    assert!(id.contains('-'), "XADD answered {id:?}");
    let mails = env
        .sink
        .wait_for_messages(1, DEADLINE)
        .await
        .expect("the welcome email of the minimal entry arrives");
    assert_eq!(mails[0].recipients, ["min@example.com"]);
    assert_eq!(mails[0].subject().as_deref(), Some("Welcome, Min!"));

    // Flat: what the original Go service's QueueClient.Publish wrote.
    redis_cli(&[
        "XADD",
        &stream,
        "*",
        "user_id",
        "u1",
        "username",
        "Ada",
        "email",
        "a@example.com",
    ])
    .await;
    let mails = env
        .sink
        .wait_for_messages(2, DEADLINE)
        .await
        .expect("the welcome email of the flat entry arrives");
    assert_eq!(mails[1].recipients, ["a@example.com"]);
    assert_eq!(mails[1].subject().as_deref(), Some("Welcome, Ada!"));

    // An entry that still cannot be decoded is dead-lettered, naming the field.
    redis_cli(&["XADD", &stream, "*", "m", r#"{"metadata":{}}"#]).await;
    let dead = env
        .eventually("the undecodable entry in the dead-letter queue", || async {
            let dead = env
                .json(&["dlq", "list", "user.registered", "--json"])
                .await;
            dead.as_array()
                .is_some_and(|d| !d.is_empty())
                .then_some(dead)
        })
        .await;
    assert_eq!(dead[0]["error"], "`m.payload` is missing", "{dead:#}");
    assert_eq!(env.sink.message_count(), 2);

    let (code, log) = worker.terminate().await;
    assert_eq!(code, Some(0), "{}", log.join("\n"));
}
