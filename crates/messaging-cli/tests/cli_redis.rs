//! The operator commands of `messaging`, run as a user runs them, against the
//! real Redis (`REDIS_URL`) in a key prefix of their own; `--json` output is
//! parsed.
//!
//! Run: `cargo test -p messaging-cli --test cli_redis`.

mod support;

use std::process::Stdio;
use std::sync::Arc;

use messaging_core::{HandlerError, StartFrom, SubscribeOptions};
use messaging_model::Message;
use serde_json::{Value, json};
use support::{DEADLINE, Env};
use tokio::io::{AsyncBufReadExt, BufReader};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tail_prints_new_messages_without_taking_them_from_other_groups() {
    support::run(|env| Box::pin(tail_scenario(env))).await;
}

async fn tail_scenario(env: &Env) {
    let topic = "orders.placed";
    // A group doing the work, created before anything is published.
    env.messaging
        .backend()
        .ensure_group(&topic.parse().unwrap(), "billing", StartFrom::Earliest)
        .await
        .unwrap();
    let mut tail = env
        .command(&["tail", topic, "--count", "2", "--timeout", "30s", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(tail.stderr.take().unwrap()).lines();
    let ready = tokio::time::timeout(DEADLINE, stderr.next_line())
        .await
        .unwrap()
        .unwrap();
    assert!(
        ready
            .as_deref()
            .unwrap_or_default()
            .starts_with("tailing orders.placed as group tail-"),
        "{ready:?}"
    );

    for n in [1, 2] {
        let published = env
            .run(&["publish", topic, "--json", &json!({"order": n}).to_string()])
            .await;
        assert_eq!(published.code, Some(0), "{}", published.stderr);
    }
    let output = tokio::time::timeout(DEADLINE, tail.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(output.status.code(), Some(0));
    let printed: Vec<Value> = String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    let orders: Vec<&Value> = printed
        .iter()
        .map(|message| &message["payload"]["order"])
        .collect();
    assert_eq!(orders, [&json!(1), &json!(2)]);
    assert_eq!(printed[0]["topic"], topic);

    // The worker's group still has both messages; the tail's group is gone.
    let stats = env.json(&["stats", topic, "--json"]).await;
    let groups = stats[0]["groups"].as_array().unwrap();
    assert_eq!(groups.len(), 1, "{stats:#}");
    assert_eq!(groups[0]["name"], "billing");
    assert_eq!(groups[0]["lag"], 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tail_gives_up_with_code_5_at_its_timeout() {
    support::run(|env| Box::pin(tail_timeout_scenario(env))).await;
}

async fn tail_timeout_scenario(env: &Env) {
    let outcome = env
        .run(&["tail", "quiet.topic", "--count", "1", "--timeout", "300ms"])
        .await;
    assert_eq!(outcome.code, Some(5), "{}", outcome.stderr);
    assert!(
        outcome
            .stderr
            .contains("timed out after 300ms with 0 of 1 messages"),
        "{}",
        outcome.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topics_and_stats_report_in_json_with_documented_exit_codes() {
    support::run(|env| Box::pin(topics_scenario(env))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_cluster_topics_and_stats_report_the_same() {
    support::run_on_cluster(|env| Box::pin(topics_scenario(env))).await;
}

async fn topics_scenario(env: &Env) {
    assert_eq!(env.run(&["topics", "create", "a.one"]).await.code, Some(0));
    let published = env.run(&["publish", "b.two", "--json", r#"{"n":1}"#]).await;
    assert_eq!(published.code, Some(0));
    let id = published.stdout.trim();
    assert!(
        uuid::Uuid::parse_str(id).is_ok(),
        "publish prints the message id: {id:?}"
    );
    let delayed = env
        .run(&["publish", "b.two", "--json", r#"{"n":2}"#, "--delay", "1h"])
        .await;
    assert_eq!(delayed.code, Some(0), "{}", delayed.stderr);

    assert_eq!(
        env.json(&["topics", "list", "--json"]).await,
        json!(["a.one", "b.two"])
    );
    let stats = env.json(&["stats", "--json"]).await;
    assert_eq!(stats[1]["topic"], "b.two");
    assert_eq!(stats[1]["length"], 1);
    assert_eq!(stats[1]["scheduled"], 1);
    assert_eq!(stats[0]["length"], 0);

    let table = env.run(&["stats"]).await;
    assert_eq!(table.code, Some(0));
    assert!(
        table.stdout.lines().next().unwrap().starts_with("TOPIC"),
        "{}",
        table.stdout
    );

    assert_eq!(env.run(&["stats", "no.such"]).await.code, Some(4));
    assert_eq!(env.run(&["topics", "delete", "a.one"]).await.code, Some(2));
    assert_eq!(
        env.run(&["topics", "delete", "a.one", "--yes"]).await.code,
        Some(0)
    );
    assert_eq!(
        env.run(&["topics", "delete", "a.one", "--yes"]).await.code,
        Some(4)
    );
    assert_eq!(
        env.json(&["topics", "list", "--json"]).await,
        json!(["b.two"])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dlq_lists_shows_replays_and_purges_dead_letters() {
    support::run(|env| Box::pin(dlq_scenario(env))).await;
}

async fn dlq_scenario(env: &Env) {
    let topic = "mail.send";
    let fail = || {
        Arc::new(|_message: Message| async {
            Err::<(), _>(HandlerError::permanent("mailbox unavailable"))
        })
    };
    env.messaging
        .subscribe_with(
            topic,
            SubscribeOptions::new("mailer"),
            messaging_core::Shared(fail()),
        )
        .await
        .unwrap();
    for n in 0..3 {
        let published = env
            .run(&["publish", topic, "--json", &json!({"n": n}).to_string()])
            .await;
        assert_eq!(published.code, Some(0));
    }
    let dead = env
        .eventually("three dead letters", || async {
            let dead = env.json(&["dlq", "list", topic, "--json"]).await;
            (dead.as_array().unwrap().len() == 3).then_some(dead)
        })
        .await;
    // Nobody consumes while replays are checked.
    env.messaging.shutdown().await;
    assert_eq!(dead[0]["group"], "mailer");
    assert_eq!(dead[0]["error"], "permanent failure: mailbox unavailable");

    let first = dead[0]["id"].as_str().unwrap();
    let shown = env.json(&["dlq", "show", topic, first]).await;
    assert_eq!(shown["message"]["payload"], json!({"n": 0}));
    assert_eq!(env.run(&["dlq", "show", topic, "0-0"]).await.code, Some(4));

    let one = env.run(&["dlq", "replay", topic, first]).await;
    assert_eq!(one.code, Some(0), "{}", one.stderr);
    assert_eq!(
        env.run(&["dlq", "replay", topic, first]).await.code,
        Some(4)
    );
    let all = env.run(&["dlq", "replay", topic, "--all"]).await;
    assert_eq!(all.code, Some(0), "{}", all.stderr);
    assert!(
        all.stdout.contains("replayed 2 dead letters"),
        "{}",
        all.stdout
    );
    let stats = env.json(&["stats", topic, "--json"]).await;
    assert_eq!(stats[0]["dead_lettered"], 0);
    // Back in the stream, aimed at the group that gave up: 3 originals + 3 replays.
    assert_eq!(stats[0]["length"], 6);

    // The replays fail again; purge clears them.
    env.messaging
        .subscribe_with(
            topic,
            SubscribeOptions::new("mailer"),
            messaging_core::Shared(fail()),
        )
        .await
        .unwrap();
    env.eventually("the replays dead again", || async {
        let stats = env.json(&["stats", topic, "--json"]).await;
        (stats[0]["dead_lettered"] == 3).then_some(())
    })
    .await;
    env.messaging.shutdown().await;
    assert_eq!(env.run(&["dlq", "purge", topic]).await.code, Some(2));
    let purged = env.run(&["dlq", "purge", topic, "--yes"]).await;
    assert_eq!(purged.code, Some(0));
    assert!(
        purged.stdout.contains("purged 3 dead letters"),
        "{}",
        purged.stdout
    );
    assert_eq!(env.json(&["dlq", "list", topic, "--json"]).await, json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tail_stops_on_ctrl_c_and_removes_its_group() {
    support::run(|env| Box::pin(tail_interrupt_scenario(env))).await;
}

async fn tail_interrupt_scenario(env: &Env) {
    let topic = "events.seen";
    let mut tail = env
        .command(&["tail", topic])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(tail.stderr.take().unwrap()).lines();
    let ready = tokio::time::timeout(DEADLINE, stderr.next_line())
        .await
        .unwrap()
        .unwrap();
    assert!(ready.unwrap_or_default().starts_with("tailing"));
    let stats = env.json(&["stats", topic, "--json"]).await;
    assert_eq!(
        stats[0]["groups"].as_array().unwrap().len(),
        1,
        "the tail's group exists: {stats:#}"
    );

    // Payload from stdin, as a script would pipe it.
    let mut publish = env
        .command(&["publish", topic, "--json", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    {
        use tokio::io::AsyncWriteExt;
        let mut stdin = publish.stdin.take().unwrap();
        stdin.write_all(br#"{"from": "stdin"}"#).await.unwrap();
    }
    assert_eq!(publish.wait().await.unwrap().code(), Some(0));
    let mut stdout = BufReader::new(tail.stdout.take().unwrap()).lines();
    let line = tokio::time::timeout(DEADLINE, stdout.next_line())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(line.contains(r#"{"from":"stdin"}"#), "{line}");

    let pid = tail.id().unwrap().to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-INT", &pid])
            .status()
            .unwrap()
            .success()
    );
    let status = tokio::time::timeout(DEADLINE, tail.wait())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status.code(), Some(0));
    let stats = env.json(&["stats", topic, "--json"]).await;
    assert_eq!(
        stats[0]["groups"],
        json!([]),
        "the tail's group is deleted: {stats:#}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topics_pause_holds_a_group_in_another_process_until_resumed() {
    support::run(|env| Box::pin(pause_scenario(env))).await;
}

/// What a handler saw, by payload `n`.
fn recording(seen: Arc<std::sync::Mutex<Vec<i64>>>) -> Arc<dyn messaging_core::MessageHandler> {
    Arc::new(move |message: Message| {
        let seen = seen.clone();
        async move {
            seen.lock()
                .unwrap()
                .push(message.payload["n"].as_i64().unwrap_or(-1));
            Ok::<(), HandlerError>(())
        }
    })
}

async fn pause_scenario(env: &Env) {
    let topic = "jobs.run";
    assert_eq!(env.run(&["topics", "create", topic]).await.code, Some(0));
    // Paused by the binary (its own process and connection) before this
    // process's subscriptions start: they learn it from Redis.
    let paused = env
        .json(&["topics", "pause", topic, "--group", "workers", "--json"])
        .await;
    assert_eq!(
        paused,
        json!({"topic": topic, "group": "workers", "changed": true, "paused": true})
    );
    let again = env
        .run(&["topics", "pause", topic, "--group", "workers"])
        .await;
    assert_eq!(again.code, Some(0));
    assert_eq!(
        again.stdout.trim(),
        "jobs.run for group workers was already paused"
    );
    assert_eq!(env.run(&["topics", "pause", "no.such"]).await.code, Some(4));

    let workers = Arc::new(std::sync::Mutex::new(Vec::new()));
    let audit = Arc::new(std::sync::Mutex::new(Vec::new()));
    for (group, seen) in [("workers", &workers), ("audit", &audit)] {
        env.messaging
            .subscribe_with(
                topic,
                SubscribeOptions::new(group),
                messaging_core::Shared(recording(seen.clone())),
            )
            .await
            .unwrap();
    }
    for n in [1, 2] {
        let published = env
            .run(&["publish", topic, "--json", &json!({"n": n}).to_string()])
            .await;
        assert_eq!(published.code, Some(0), "{}", published.stderr);
    }
    // The unpaused group is the marker: once it has both, the paused one
    // could have had them too.
    env.eventually("the audit group to get both", || async {
        (audit.lock().unwrap().len() == 2).then_some(())
    })
    .await;
    assert!(
        workers.lock().unwrap().is_empty(),
        "the paused group took nothing"
    );
    let stats = env.json(&["stats", topic, "--json"]).await;
    let groups = stats[0]["groups"].as_array().unwrap();
    let of = |name: &str| groups.iter().find(|g| g["name"] == name).unwrap().clone();
    assert_eq!(of("workers")["paused"], true, "{stats:#}");
    assert_eq!(of("workers")["lag"], 2);
    assert_eq!(of("audit")["paused"], false);
    assert_eq!(stats[0]["paused"], false);
    let table = env.run(&["stats", topic]).await;
    assert!(
        table.stdout.lines().next().unwrap().ends_with("PAUSED"),
        "{}",
        table.stdout
    );
    let workers_row = table
        .stdout
        .lines()
        .find(|line| line.contains("workers"))
        .unwrap();
    assert!(workers_row.ends_with("yes"), "{}", table.stdout);

    let resumed = env
        .run(&["topics", "resume", topic, "--group", "workers"])
        .await;
    assert_eq!(resumed.code, Some(0), "{}", resumed.stderr);
    assert_eq!(resumed.stdout.trim(), "resumed jobs.run for group workers");
    env.eventually("the resumed group to get both", || async {
        (workers.lock().unwrap().len() == 2).then_some(())
    })
    .await;
    env.messaging.shutdown().await;
    let mut got = workers.lock().unwrap().clone();
    got.sort_unstable();
    assert_eq!(got, [1, 2], "each once");
    let stats = env.json(&["stats", topic, "--json"]).await;
    assert_eq!(stats[0]["groups"][0]["paused"], false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_priority_topic_created_and_published_by_the_cli_serves_high_first() {
    support::run(|env| Box::pin(priority_scenario(env))).await;
}

async fn priority_scenario(env: &Env) {
    let created = env.run(&["topics", "create", "jobs", "--priorities"]).await;
    assert_eq!(created.code, Some(0), "{}", created.stderr);
    assert!(
        created.stdout.contains("priorities high, normal and low"),
        "{}",
        created.stdout
    );
    assert_eq!(
        env.run(&["topics", "create", "jobs", "--priorities"])
            .await
            .code,
        Some(0)
    );
    let changed = env
        .run(&["topics", "create", "jobs", "--partitions", "3"])
        .await;
    assert_eq!(changed.code, Some(2), "{}", changed.stderr);
    assert!(
        changed.stderr.contains("is a priority topic"),
        "{}",
        changed.stderr
    );
    let bad = env
        .run(&["publish", "jobs", "--json", "{}", "--priority", "urgent"])
        .await;
    assert_eq!(bad.code, Some(2), "{}", bad.stderr);
    let forged = env
        .run(&[
            "publish",
            "jobs",
            "--json",
            "{}",
            "--meta",
            "priority=urgent",
        ])
        .await;
    assert_eq!(forged.code, Some(2), "{}", forged.stderr);

    for (priority, count) in [("low", 12), ("high", 6)] {
        for n in 0..count {
            let payload = json!({"priority": priority, "n": n}).to_string();
            let published = env
                .run(&[
                    "publish",
                    "jobs",
                    "--json",
                    &payload,
                    "--priority",
                    priority,
                ])
                .await;
            assert_eq!(published.code, Some(0), "{}", published.stderr);
        }
    }
    // Seen from outside (redis-cli): each lane is its own stream.
    for (lane, expected) in [(0, "6"), (1, "0"), (2, "12")] {
        let key = format!("{{{}:jobs#{lane}}}:stream", env.prefix);
        let output = std::process::Command::new("redis-cli")
            .args(["-u", &support::redis_url(), "XLEN", &key])
            .output()
            .expect("redis-cli runs");
        assert_eq!(
            String::from_utf8_lossy(&output.stdout).trim(),
            expected,
            "{key}"
        );
    }
    assert_eq!(
        env.json(&["stats", "jobs", "--json"]).await[0]["length"],
        18
    );

    // One consumer taking one at a time gets the six high first (its reads 0-3
    // and 5-6; read 4 starts with the empty normal lane and goes on to high).
    let backend = Arc::new(messaging_core::Partitioned::from_arc(Arc::new(
        messaging_redis::RedisBackend::connect(
            messaging_redis::RedisBackendConfig::new(support::redis_url())
                .with_key_prefix(&env.prefix),
        )
        .await
        .unwrap(),
    )));
    let consumer = messaging_core::MessagingService::new(backend);
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let handler: Arc<dyn messaging_core::MessageHandler> = {
        let seen = seen.clone();
        Arc::new(move |message: Message| {
            let seen = seen.clone();
            async move {
                seen.lock().unwrap().push(
                    message.payload["priority"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned(),
                );
                Ok::<(), HandlerError>(())
            }
        })
    };
    consumer
        .subscribe_with(
            "jobs",
            SubscribeOptions::new("workers")
                .with_concurrency(1)
                .with_batch_size(1),
            messaging_core::Shared(handler),
        )
        .await
        .unwrap();
    env.eventually("every job handled", || async {
        (seen.lock().unwrap().len() >= 18).then_some(())
    })
    .await;
    consumer.shutdown().await;
    let order = seen.lock().unwrap().clone();
    assert_eq!(&order[..6], ["high"; 6], "{order:?}");
    assert_eq!(order.len(), 18, "{order:?}");
}
