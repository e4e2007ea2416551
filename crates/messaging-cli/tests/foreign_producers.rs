//! Producers that are not this library: a separate process (`redis-cli`) XADDs
//! a minimal entry and a flat-fields entry onto the stream the real `messaging
//! worker` reads; the welcome email arrives for each (docs/redis.md, "Entry
//! format"). The email goes to Postfix's `smtp-sink`, an SMTP server that is
//! not this project's.
//!
//! Run: `cargo test -p messaging-cli --test foreign_producers`.

mod support;

use support::{Env, PostfixSink};

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
    let postfix = PostfixSink::start().await;
    env.send_mail_to(postfix.port());
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
    let mails = postfix.wait_for_mails(1).await;
    assert_eq!(mails[0].recipients, ["min@example.com"]);
    assert_eq!(mails[0].subject.as_deref(), Some("Welcome, Min!"));

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
    let mails = postfix.wait_for_mails(2).await;
    let flat = mails
        .iter()
        .find(|mail| mail.recipients == ["a@example.com"])
        .unwrap_or_else(|| panic!("the flat entry's email: {mails:?}"));
    assert_eq!(flat.subject.as_deref(), Some("Welcome, Ada!"));

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
    assert_eq!(postfix.mails().len(), 2);
    assert_eq!(
        env.sink.message_count(),
        0,
        "nothing went to the project's own sink"
    );

    let (code, log) = worker.terminate().await;
    assert_eq!(code, Some(0), "{}", log.join("\n"));
}
