//! End-to-end: the `messaging worker` binary against real Redis (`REDIS_URL`),
//! PostgreSQL (`DATABASE_URL`, a schema per test) and a real SMTP server on
//! loopback (smtp-sink); events published with the `messaging` CLI.
//!
//! Run: `cargo test -p messaging-cli --test e2e` (the Makefile's `make test` sets
//! both URLs; `docker compose up -d` starts the servers).

mod support;

use serde_json::{Value, json};
use smtp_sink::{Reply, SmtpCommand};
use support::{DEADLINE, Env};

fn notifications(inbox: &Value) -> Vec<Value> {
    inbox["notifications"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registered_user_gets_the_welcome_email_and_a_sent_notification() {
    support::run(|env| {
        Box::pin(a_registered_user_gets_the_welcome_email_and_a_sent_notification_scenario(env))
    })
    .await;
}

async fn a_registered_user_gets_the_welcome_email_and_a_sent_notification_scenario(env: &Env) {
    let worker = env.worker(&[]).await;

    let published = env
        .run(&[
            "publish",
            "user.registered",
            "--json",
            r#"{"user_id":"u-ada","email":"ada@example.com","name":"Ada"}"#,
        ])
        .await;
    assert_eq!(published.code, Some(0), "{}", published.stderr);

    let mails = env
        .sink
        .wait_for_messages(1, DEADLINE)
        .await
        .expect("the welcome email arrives");
    assert_eq!(mails[0].recipients, ["ada@example.com"]);
    assert_eq!(mails[0].subject().as_deref(), Some("Welcome, Ada!"));
    assert!(
        mails[0]
            .text_body()
            .unwrap_or_default()
            .contains("Your account ada@example.com is ready")
    );

    let inbox = env
        .eventually("a sent notification in the inbox", || async {
            let inbox = env.inbox("u-ada").await;
            let sent = notifications(&inbox).iter().any(|n| n["status"] == "sent");
            sent.then_some(inbox)
        })
        .await;
    let items = notifications(&inbox);
    assert_eq!(items.len(), 1, "{inbox:#}");
    assert_eq!(items[0]["kind"], "email");
    assert_eq!(items[0]["title"], "Welcome, Ada!");
    assert_eq!(inbox["unread"], 1);

    let (code, log) = worker.terminate().await;
    assert_eq!(code, Some(0), "{}", log.join("\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wallet_recharge_produces_the_recharge_notice_and_email() {
    support::run(|env| {
        Box::pin(a_wallet_recharge_produces_the_recharge_notice_and_email_scenario(env))
    })
    .await;
}

async fn a_wallet_recharge_produces_the_recharge_notice_and_email_scenario(env: &Env) {
    let worker = env.worker(&[]).await;

    let payload = json!({"user_id": "u-bob", "email": "bob@example.com", "amount": "25.00", "currency": "EUR", "balance": "40.00"});
    let published = env
        .run(&[
            "publish",
            "wallet.recharged",
            "--json",
            &payload.to_string(),
        ])
        .await;
    assert_eq!(published.code, Some(0), "{}", published.stderr);

    let mails = env
        .sink
        .wait_for_messages(1, DEADLINE)
        .await
        .expect("the recharge email arrives");
    assert_eq!(mails[0].recipients, ["bob@example.com"]);
    assert_eq!(
        mails[0].subject().as_deref(),
        Some("Wallet recharged: 25.00 EUR")
    );

    let inbox = env
        .eventually("the notice and the email in the inbox", || async {
            let inbox = env.inbox("u-bob").await;
            let items = notifications(&inbox);
            (items.len() == 2 && items.iter().all(|n| n["status"] == "sent")).then_some(inbox)
        })
        .await;
    let items = notifications(&inbox);
    let notice = items
        .iter()
        .find(|n| n["kind"] == "system")
        .expect("an in-app notice");
    assert_eq!(notice["title"], "Wallet recharged");
    assert!(
        notice["content"]
            .as_str()
            .unwrap()
            .contains("New balance: 40.00 EUR"),
        "{notice:#}"
    );
    assert!(items.iter().any(|n| n["kind"] == "email"));

    let (code, _) = worker.terminate().await;
    assert_eq!(code, Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_provider_dead_letters_the_event_and_dlq_replay_recovers_it() {
    support::run(|env| {
        Box::pin(a_failing_provider_dead_letters_the_event_and_dlq_replay_recovers_it_scenario(env))
    })
    .await;
}

async fn a_failing_provider_dead_letters_the_event_and_dlq_replay_recovers_it_scenario(env: &Env) {
    // Every message is refused at the end of DATA with a temporary failure.
    env.sink
        .fail_next(SmtpCommand::MessageEnd, usize::MAX, Reply::transient());
    let worker = env.worker(&[]).await;

    let published = env
        .run(&[
            "publish",
            "user.registered",
            "--json",
            r#"{"user_id":"u-cy","email":"cy@example.com","name":"Cy"}"#,
            "--max-retry",
            "2",
        ])
        .await;
    assert_eq!(published.code, Some(0), "{}", published.stderr);

    // max_retry 2 (the publisher's choice): three attempts, then the dead-letter queue.
    let dead = env
        .eventually("a dead letter", || async {
            let dead = env
                .json(&["dlq", "list", "user.registered", "--json"])
                .await;
            (dead.as_array().is_some_and(|dead| !dead.is_empty())).then_some(dead)
        })
        .await;
    assert_eq!(dead[0]["attempts"], 3, "{dead:#}");
    assert_eq!(dead[0]["group"], "notification");
    assert!(
        dead[0]["error"].as_str().unwrap().contains("451"),
        "{dead:#}"
    );
    assert_eq!(env.sink.message_count(), 0);
    let stats = env.json(&["stats", "user.registered", "--json"]).await;
    assert_eq!(stats[0]["dead_lettered"], 1, "{stats:#}");

    let shown = env
        .json(&[
            "dlq",
            "show",
            "user.registered",
            dead[0]["id"].as_str().unwrap(),
        ])
        .await;
    assert_eq!(shown["message"]["payload"]["email"], "cy@example.com");

    // The provider is back: replay.
    env.sink.clear_failures();
    let replayed = env
        .run(&["dlq", "replay", "user.registered", "--all"])
        .await;
    assert_eq!(replayed.code, Some(0), "{}", replayed.stderr);
    assert!(
        replayed.stdout.contains("replayed 1 dead letters"),
        "{}",
        replayed.stdout
    );

    let mails = env
        .sink
        .wait_for_messages(1, DEADLINE)
        .await
        .expect("the replayed email arrives");
    assert_eq!(mails[0].subject().as_deref(), Some("Welcome, Cy!"));
    env.eventually("the notification marked sent", || async {
        let inbox = env.inbox("u-cy").await;
        notifications(&inbox)
            .iter()
            .any(|n| n["status"] == "sent")
            .then_some(())
    })
    .await;
    let stats = env.json(&["stats", "user.registered", "--json"]).await;
    assert_eq!(stats[0]["dead_lettered"], 0, "{stats:#}");

    let (code, _) = worker.terminate().await;
    assert_eq!(code, Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worker_serves_per_topic_gauges_and_stops_on_sigterm() {
    support::run(|env| {
        Box::pin(the_worker_serves_per_topic_gauges_and_stops_on_sigterm_scenario(env))
    })
    .await;
}

async fn the_worker_serves_per_topic_gauges_and_stops_on_sigterm_scenario(env: &Env) {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let addr = format!("127.0.0.1:{port}");
    let metrics_flag = format!("--metrics-addr={addr}");
    let worker = env.worker(&[&metrics_flag]).await;
    assert!(
        worker
            .log
            .iter()
            .any(|line| line.contains(&format!("metrics on http://{addr}/metrics")))
    );

    // A scheduled message shows in the gauges without being delivered.
    let published = env
        .run(&[
            "publish",
            "user.registered",
            "--json",
            r#"{"user_id":"u-d","email":"d@example.com","name":"D"}"#,
            "--delay",
            "1h",
        ])
        .await;
    assert_eq!(published.code, Some(0), "{}", published.stderr);

    let body = env
        .eventually("the scheduled gauge", || async {
            let body = support::scrape(&addr).await?;
            body.contains(r#"messaging_topic_scheduled{topic="user.registered"} 1"#)
                .then_some(body)
        })
        .await;
    assert!(
        body.contains(r#"messaging_group_lag{topic="user.registered",group="notification"} 0"#),
        "{body}"
    );

    // The runtime's own counters and histogram come through the same endpoint.
    let handled = env
        .run(&[
            "publish",
            "user.registered",
            "--json",
            r#"{"user_id":"u-e","email":"e@example.com","name":"E"}"#,
        ])
        .await;
    assert_eq!(handled.code, Some(0), "{}", handled.stderr);
    env.sink
        .wait_for_messages(1, DEADLINE)
        .await
        .expect("the email arrives");
    let body = env
        .eventually("the handled counter", || async {
            let body = support::scrape(&addr).await?;
            body.contains(
                r#"messaging_handled_total{topic="user.registered",group="notification"} 1"#,
            )
            .then_some(body)
        })
        .await;
    assert!(
        body.contains("messaging_handler_duration_seconds"),
        "{body}"
    );
    assert!(
        body.contains("# TYPE messaging_topic_dead_lettered gauge"),
        "{body}"
    );

    let (code, log) = worker.terminate().await;
    assert_eq!(code, Some(0), "{}", log.join("\n"));
    assert!(
        log.iter().any(|line| line.contains("worker stopped")),
        "{}",
        log.join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_worker_leaves_nothing_behind_for_its_restart() {
    support::run(|env| Box::pin(restart_scenario(env))).await;
}

async fn restart_scenario(env: &Env) {
    const EVENTS: usize = 300;
    let first = env.worker(&["--consumer", "replica-a"]).await;
    let payloads = (0..EVENTS)
        .map(|i| json!({"user_id": format!("u-{i}"), "email": format!("user{i}@example.com"), "name": format!("User {i}")}))
        .collect();
    env.messaging
        .publish_batch("user.registered", payloads)
        .await
        .unwrap();
    // Stop it while it is busy.
    env.sink
        .wait_for_messages(1, DEADLINE)
        .await
        .expect("the first worker sends");
    let (code, log) = first.terminate().await;
    assert_eq!(code, Some(0), "{}", log.join("\n"));
    assert!(
        log.iter().any(|line| line.contains("worker stopped")),
        "{}",
        log.join("\n")
    );

    eprintln!(
        "the first worker sent {} of {EVENTS} emails before it stopped",
        env.sink.message_count()
    );

    // The same replica comes back and finishes the rest: every event gets its
    // email and exactly one sent notification.
    let second = env.worker(&["--consumer", "replica-a"]).await;
    env.eventually("every notification sent", || async {
        (env.sent_notifications().await == EVENTS as i64).then_some(())
    })
    .await;
    let mut recipients: Vec<String> = env
        .sink
        .messages()
        .into_iter()
        .flat_map(|mail| mail.recipients)
        .collect();
    recipients.sort();
    recipients.dedup();
    assert_eq!(recipients.len(), EVENTS);
    let stats = env.json(&["stats", "user.registered", "--json"]).await;
    assert_eq!(stats[0]["dead_lettered"], 0, "{stats:#}");
    assert_eq!(stats[0]["groups"][0]["pending"], 0, "{stats:#}");
    assert_eq!(stats[0]["groups"][0]["lag"], 0, "{stats:#}");
    let (code, _) = second.terminate().await;
    assert_eq!(code, Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_runs_on_the_real_servers_and_cleans_up() {
    let output = tokio::process::Command::new(support::BIN)
        .args([
            "demo",
            "--redis",
            &support::redis_url(),
            "--database",
            &support::database_url(),
        ])
        .env_remove("REDIS_URL")
        .env_remove("DATABASE_URL")
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("status sent, 1 unread"), "{stdout}");
    assert!(
        stdout.contains("done: every step behaved as announced"),
        "{stdout}"
    );

    // What it created is gone: its key prefix and its schema.
    let prefix = stdout
        .split("key prefix ")
        .nth(1)
        .and_then(|rest| rest.split(')').next())
        .expect("the demo names its key prefix");
    let schema = stdout
        .split("(schema ")
        .nth(1)
        .and_then(|rest| rest.split(')').next())
        .expect("the demo names its schema");
    let backend = messaging_redis::RedisBackend::connect(
        messaging_redis::RedisBackendConfig::new(support::redis_url()).with_key_prefix(prefix),
    )
    .await
    .unwrap();
    let topics = messaging_core::BackendAdmin::list_topics(&backend)
        .await
        .unwrap();
    assert!(topics.is_empty(), "{topics:?}");
    let pool = sqlx::PgPool::connect(&support::database_url())
        .await
        .unwrap();
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_namespace WHERE nspname = $1")
        .bind(schema)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(left, 0, "schema {schema} is dropped");
    pool.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notification_requests_are_dispatched_to_the_sms_and_push_providers() {
    support::run(|env| Box::pin(requests_scenario(env))).await;
}

async fn requests_scenario(env: &Env) {
    let mut sms = support::HttpProvider::start().await;
    let mut push = support::HttpProvider::start().await;
    let sms_url = format!("{}/sms", sms.url);
    let push_url = format!("{}/push", push.url);
    let worker = env
        .worker_with_env(
            &[],
            &[
                ("SMS_URL", &sms_url),
                ("SMS_API_KEY", "sms-token"),
                ("PUSH_URL", &push_url),
            ],
        )
        .await;

    let request = json!({"user_id": "u-eve", "to": "+14155550100", "text": "Your code is 493021"});
    let published = env
        .run(&[
            "publish",
            "notification.sms",
            "--json",
            &request.to_string(),
        ])
        .await;
    assert_eq!(published.code, Some(0), "{}", published.stderr);
    let (head, body) = sms.next_request().await;
    assert!(head.starts_with("POST /sms"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("authorization: bearer sms-token"),
        "{head}"
    );
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["to"], "+14155550100");
    assert_eq!(body["text"], "Your code is 493021");

    let request = json!({"user_id": "u-eve", "device_token": "device-1", "title": "Hello", "body": "From the worker"});
    let published = env
        .run(&[
            "publish",
            "notification.push",
            "--json",
            &request.to_string(),
        ])
        .await;
    assert_eq!(published.code, Some(0), "{}", published.stderr);
    let (head, body) = push.next_request().await;
    assert!(head.starts_with("POST /push"), "{head}");
    assert!(
        body.contains("device-1") && body.contains("From the worker"),
        "{body}"
    );

    let inbox = env
        .eventually("both notifications sent", || async {
            let inbox = env.inbox("u-eve").await;
            let items = notifications(&inbox);
            (items.len() == 2 && items.iter().all(|n| n["status"] == "sent")).then_some(inbox)
        })
        .await;
    let mut kinds: Vec<String> = notifications(&inbox)
        .iter()
        .map(|n| n["kind"].as_str().unwrap().to_owned())
        .collect();
    kinds.sort();
    assert_eq!(kinds, ["push", "sms"]);

    let (code, _) = worker.terminate().await;
    assert_eq!(code, Some(0));
}

// ---------------------------------------------------------------------------
// The same on a Redis Cluster (`REDIS_CLUSTER_URL`, 3 masters + 3 replicas on
// loopback): the worker and every command get the `redis+cluster://` URL.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_cluster_a_registered_user_gets_the_welcome_email() {
    support::run_on_cluster(|env| {
        Box::pin(a_registered_user_gets_the_welcome_email_and_a_sent_notification_scenario(env))
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_cluster_dead_letters_are_listed_shown_and_replayed() {
    support::run_on_cluster(|env| {
        Box::pin(a_failing_provider_dead_letters_the_event_and_dlq_replay_recovers_it_scenario(env))
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_cluster_topics_are_created_listed_counted_and_deleted() {
    support::run_on_cluster(|env| {
        Box::pin(async move {
            // The command of the issue that failed with `Moved: 14372`.
            let names = ["a.one", "b.two", "c.three", "d.four", "e.five", "f.six"];
            for name in names {
                let created = env.run(&["topics", "create", name]).await;
                assert_eq!(created.code, Some(0), "{}", created.stderr);
                let published = env.run(&["publish", name, "--json", r#"{"n":1}"#]).await;
                assert_eq!(published.code, Some(0), "{}", published.stderr);
            }
            let listed = env.run(&["topics", "list"]).await;
            assert_eq!(listed.code, Some(0), "{}", listed.stderr);
            for name in names {
                assert!(
                    listed.stdout.contains(name),
                    "{name} not in {}",
                    listed.stdout
                );
            }
            let stats = env.json(&["stats", "--json"]).await;
            let stats = stats.as_array().expect("stats of every topic");
            assert_eq!(stats.len(), names.len(), "{stats:#?}");
            assert!(stats.iter().all(|topic| topic["length"] == 1), "{stats:#?}");
            for name in names {
                let deleted = env.run(&["topics", "delete", name, "--yes"]).await;
                assert_eq!(deleted.code, Some(0), "{}", deleted.stderr);
            }
            let listed = env.run(&["topics", "list"]).await;
            for name in names {
                assert!(
                    !listed.stdout.contains(name),
                    "{name} still in {}",
                    listed.stdout
                );
            }
        })
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_cluster_a_partitioned_topic_feeds_the_worker_and_its_dead_letters_replay() {
    support::run_on_cluster(|env| {
        Box::pin(async move {
            // The worker's topic in 6 partitions, spread over the masters.
            let created = env
                .run(&["topics", "create", "user.registered", "--partitions", "6"])
                .await;
            assert_eq!(created.code, Some(0), "{}", created.stderr);
            assert_eq!(
                created.stdout.trim(),
                "created user.registered with 6 partitions"
            );
            a_failing_provider_dead_letters_the_event_and_dlq_replay_recovers_it_scenario(env)
                .await;
            let listed = env.json(&["topics", "list", "--json"]).await;
            let names: Vec<&str> = listed
                .as_array()
                .unwrap()
                .iter()
                .map(|name| name.as_str().unwrap())
                .collect();
            assert_eq!(
                names
                    .iter()
                    .filter(|name| **name == "user.registered")
                    .count(),
                1,
                "the topic is listed once: {names:?}"
            );
            assert!(
                names.iter().all(|name| !name.contains('#')),
                "partitions are not listed: {names:?}"
            );
        })
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_cluster_a_partition_count_is_fixed_once_created() {
    support::run_on_cluster(|env| {
        Box::pin(async move {
            let create = |n: &'static str| async move {
                env.run(&["topics", "create", "orders", "--partitions", n])
                    .await
            };
            assert_eq!(create("6").await.code, Some(0));
            assert_eq!(
                create("6").await.code,
                Some(0),
                "the same count again is fine"
            );
            let changed = create("3").await;
            assert_eq!(changed.code, Some(2), "{}", changed.stderr);
            assert!(
                changed.stderr.contains("has 6 partitions, not 3"),
                "{}",
                changed.stderr
            );
            assert_eq!(create("0").await.code, Some(2));
            for n in 0..12 {
                let payload = format!(r#"{{"n":{n}}}"#);
                let published = env.run(&["publish", "orders", "--json", &payload]).await;
                assert_eq!(published.code, Some(0), "{}", published.stderr);
            }
            let stats = env.json(&["stats", "orders", "--json"]).await;
            assert_eq!(stats[0]["topic"], "orders", "{stats:#}");
            assert_eq!(stats[0]["length"], 12, "{stats:#}");
            // A plain topic that exists cannot become partitioned.
            assert_eq!(
                env.run(&["topics", "create", "plain.one"]).await.code,
                Some(0)
            );
            let late = env
                .run(&["topics", "create", "plain.one", "--partitions", "4"])
                .await;
            assert_eq!(late.code, Some(2), "{}", late.stderr);
            assert_eq!(
                env.json(&["topics", "list", "--json"]).await,
                json!(["orders", "plain.one"])
            );
            let deleted = env.run(&["topics", "delete", "orders", "--yes"]).await;
            assert_eq!(deleted.code, Some(0), "{}", deleted.stderr);
            assert_eq!(
                env.json(&["topics", "list", "--json"]).await,
                json!(["plain.one"])
            );
        })
    })
    .await;
}
