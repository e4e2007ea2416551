//! `messaging suppressions` and the worker's suppression check, end to end:
//! the real binary against PostgreSQL (a schema per test), Redis and an SMTP
//! sink.
//!
//! Run: `cargo test -p messaging-cli --test suppressions`.

mod support;

use std::sync::Arc;

use messaging_model::NotificationKind;
use notification::store::{Suppression, SuppressionReason, SuppressionStore};
use notification_store_postgres::{PostgresStore, PostgresStoreConfig};
use serde_json::Value;
use support::{DEADLINE, Env};

/// A store on the test's schema, migrated.
async fn store(env: &Env) -> PostgresStore {
    let store = PostgresStore::connect(
        PostgresStoreConfig::new(support::database_url()).with_schema(&env.schema),
    )
    .await
    .expect("PostgreSQL");
    store.migrate().await.expect("migrate");
    store
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suppressions_are_listed_and_removed_and_the_worker_does_not_send_to_them() {
    support::run(|env| Box::pin(scenario(env))).await;
}

async fn scenario(env: &Env) {
    let store = store(env).await;
    store
        .suppress(
            &Suppression::new(
                NotificationKind::Email,
                "ann@example.com",
                SuppressionReason::HardBounce,
                chrono::Utc::now(),
            )
            .with_detail("550 5.1.1 no such user"),
        )
        .await
        .unwrap();
    store
        .suppress(&Suppression::new(
            NotificationKind::Sms,
            "+15550100",
            SuppressionReason::Complaint,
            chrono::Utc::now(),
        ))
        .await
        .unwrap();

    let all = env.json(&["suppressions", "list", "--json"]).await;
    let listed: Vec<(String, String, String)> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["channel"].as_str().unwrap().to_owned(),
                e["address"].as_str().unwrap().to_owned(),
                e["reason"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        listed,
        [
            (
                "email".into(),
                "ann@example.com".into(),
                "hard_bounce".into()
            ),
            ("sms".into(), "+15550100".into(), "complaint".into()),
        ]
    );
    let sms_only = env
        .json(&["suppressions", "list", "--channel", "sms", "--json"])
        .await;
    assert_eq!(sms_only.as_array().unwrap().len(), 1, "{sms_only:#}");
    let table = env.run(&["suppressions", "list"]).await;
    assert_eq!(table.code, Some(0), "{}", table.stderr);
    assert!(
        table.stdout.contains("550 5.1.1 no such user"),
        "{}",
        table.stdout
    );

    // The worker records a send to the suppressed address `suppressed`, and
    // sends the other.
    let worker = env.worker(&[]).await;
    for (user, to) in [("u-ann", "ann@example.com"), ("u-bob", "bob@example.com")] {
        let body = format!(r#"{{"user_id":"{user}","to":"{to}","subject":"Hello","text":"Hi"}}"#);
        let published = env
            .run(&["publish", "notification.email", "--json", &body])
            .await;
        assert_eq!(published.code, Some(0), "{}", published.stderr);
    }
    let ann = env
        .eventually("ann's notification recorded", || async {
            let inbox = env.inbox("u-ann").await;
            let items = inbox["notifications"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            items.first().cloned()
        })
        .await;
    assert_eq!(ann["status"], "suppressed", "{ann:#}");
    assert!(
        ann["error"]
            .as_str()
            .unwrap_or_default()
            .contains("hard_bounce"),
        "{ann:#}"
    );
    let mails = env
        .sink
        .wait_for_messages(1, DEADLINE)
        .await
        .expect("bob's email arrives");
    assert_eq!(mails[0].recipients, ["bob@example.com"]);
    env.eventually("bob's notification sent", || async {
        let inbox = env.inbox("u-bob").await;
        (inbox["notifications"][0]["status"] == "sent").then_some(())
    })
    .await;
    let (code, log) = worker.terminate().await;
    assert_eq!(code, Some(0), "{log:?}");
    assert_eq!(
        env.sink.messages().len(),
        1,
        "nothing was sent to the suppressed address"
    );

    let removed = env
        .run(&["suppressions", "remove", "ANN@example.com"])
        .await;
    assert_eq!(removed.code, Some(0), "{}", removed.stderr);
    let again = env
        .run(&["suppressions", "remove", "ann@example.com"])
        .await;
    assert_eq!(
        again.code,
        Some(4),
        "not suppressed any more: {}",
        again.stderr
    );
    let wrong_channel = env
        .run(&["suppressions", "remove", "+15550100", "--channel", "email"])
        .await;
    assert_eq!(wrong_channel.code, Some(4), "{}", wrong_channel.stderr);
    let left: Value = env.json(&["suppressions", "list", "--json"]).await;
    assert_eq!(left.as_array().unwrap().len(), 1, "{left:#}");
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hard_bounce_and_a_complaint_suppress_across_a_worker_restart() {
    support::run(|env| Box::pin(restart_scenario(env))).await;
}

async fn publish_email(env: &Env, user: &str, to: &str) {
    let body = format!(r#"{{"user_id":"{user}","to":"{to}","subject":"Hello","text":"Hi"}}"#);
    let published = env
        .run(&["publish", "notification.email", "--json", &body])
        .await;
    assert_eq!(published.code, Some(0), "{}", published.stderr);
}

async fn status_of_latest(env: &Env, user: &str, count: usize) -> Value {
    env.eventually("the notification recorded with an outcome", || async {
        let inbox = env.inbox(user).await;
        let items = inbox["notifications"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        (items.len() == count && items[0]["status"] != "sending" && items[0]["status"] != "pending")
            .then(|| items[0].clone())
    })
    .await
}

async fn restart_scenario(env: &Env) {
    use notification_delivery_events::apply::DeliveryEventApplier;
    use notification_delivery_events::postmark::PostmarkVerifier;

    // First worker: both are sent.
    let worker = env.worker(&[]).await;
    publish_email(env, "u-erin", "erin@example.com").await;
    publish_email(env, "u-finn", "finn@example.com").await;
    env.sink
        .wait_for_messages(2, DEADLINE)
        .await
        .expect("both emails arrive");
    assert_eq!(status_of_latest(env, "u-erin", 1).await["status"], "sent");
    assert_eq!(status_of_latest(env, "u-finn", 1).await["status"], "sent");
    let (code, log) = worker.terminate().await;
    assert_eq!(code, Some(0), "{log:?}");

    // The provider calls back: a hard bounce for erin, a complaint for finn
    // (applied by this process, as a webhook endpoint would, on its own store).
    let store = store(env).await;
    let applier = DeliveryEventApplier::new(Arc::new(store.clone()), Arc::new(store.clone()));
    let verifier = PostmarkVerifier::new("hooks", "s3cret");
    let headers = [("Authorization", "Basic aG9va3M6czNjcmV0")];
    for body in [
        br#"{"RecordType":"Bounce","Type":"HardBounce","MessageID":"pm-1","Email":"erin@example.com","BouncedAt":"2026-01-01T00:00:00Z","Description":"no such user"}"#.as_slice(),
        br#"{"RecordType":"SpamComplaint","MessageID":"pm-2","Email":"finn@example.com","BouncedAt":"2026-01-01T00:00:00Z"}"#.as_slice(),
    ] {
        let events = verifier.parse(body, &headers[..]).expect("a genuine callback");
        applier.apply_all(&events).await.expect("applied");
    }
    store.close().await;

    // A new worker process: the suppressions are read from PostgreSQL.
    let worker = env.worker(&[]).await;
    publish_email(env, "u-erin", "erin@example.com").await;
    publish_email(env, "u-finn", "finn@example.com").await;
    publish_email(env, "u-gus", "gus@example.com").await;
    env.sink
        .wait_for_messages(3, DEADLINE)
        .await
        .expect("gus's email arrives");
    let erin = status_of_latest(env, "u-erin", 2).await;
    assert_eq!(erin["status"], "suppressed", "{erin:#}");
    assert!(
        erin["error"].as_str().unwrap().contains("hard_bounce"),
        "{erin:#}"
    );
    let finn = status_of_latest(env, "u-finn", 2).await;
    assert_eq!(finn["status"], "suppressed", "{finn:#}");
    assert!(
        finn["error"].as_str().unwrap().contains("complaint"),
        "{finn:#}"
    );
    let (code, log) = worker.terminate().await;
    assert_eq!(code, Some(0), "{log:?}");
    let mut recipients: Vec<String> = env
        .sink
        .messages()
        .into_iter()
        .flat_map(|m| m.recipients)
        .collect();
    recipients.sort();
    assert_eq!(
        recipients,
        ["erin@example.com", "finn@example.com", "gus@example.com"],
        "each sent once, none after the suppression"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_for_an_address_suppressed_since_its_first_attempt_is_recorded_suppressed() {
    support::run(|env| Box::pin(retry_scenario(env))).await;
}

/// The relay refuses every email with `451` until the row says `suppressed`,
/// and the worker keeps retrying (many retries, short delays): whichever retry
/// comes after the bounce is applied finds the address suppressed, whatever
/// the timing. It ends `suppressed`, with only the refused attempts logged.
async fn retry_scenario(env: &Env) {
    use notification_delivery_events::apply::DeliveryEventApplier;
    use notification_delivery_events::postmark::PostmarkVerifier;
    use smtp_sink::{Reply, SmtpCommand};

    // 100 retries (the most the worker allows) at least 400 ms apart once the
    // backoff reaches its cap: the retries outlast the test's deadline.
    env.edit_config(|text| {
        text.replace("handler_max_retry = 2", "handler_max_retry = 100")
            .replace("max_retry = 2", "max_retry = 100")
            .replace("max_delay = \"200ms\"", "max_delay = \"500ms\"")
    });
    env.sink.fail_next(
        SmtpCommand::Mail,
        usize::MAX,
        // 451, not 421: the connection stays up, so one attempt is one MAIL
        // (after a 421 the pool retries once on a fresh connection).
        Reply::new(451, "4.3.0 try again later"),
    );
    let worker = env.worker(&[]).await;
    publish_email(env, "u-ivy", "ivy@example.com").await;
    let failed = status_of_latest(env, "u-ivy", 1).await;
    assert_eq!(failed["status"], "failed", "{failed:#}");

    // The provider reports a hard bounce of the address (of an earlier
    // message: no send of ours matches), applied as a webhook endpoint would.
    let store = store(env).await;
    let applier = DeliveryEventApplier::new(Arc::new(store.clone()), Arc::new(store.clone()));
    let body = br#"{"RecordType":"Bounce","Type":"HardBounce","MessageID":"pm-earlier","Email":"ivy@example.com","BouncedAt":"2026-01-01T00:00:00Z","Description":"no such user"}"#;
    let headers = [("Authorization", "Basic aG9va3M6czNjcmV0")];
    let events = PostmarkVerifier::new("hooks", "s3cret")
        .parse(body, &headers[..])
        .expect("a genuine callback");
    let applied = applier.apply_all(&events).await.expect("applied");
    assert!(applied[0].notification.is_none());
    store.close().await;

    let suppressed = env
        .eventually("the retried notification recorded suppressed", || async {
            let inbox = env.json(&["inbox", "u-ivy", "--attempts", "--json"]).await;
            (inbox["notifications"][0]["status"] == "suppressed")
                .then(|| inbox["notifications"][0].clone())
        })
        .await;
    // From now on the relay would accept anything: nothing more is sent.
    env.sink.clear_failures();
    assert!(
        suppressed["error"]
            .as_str()
            .is_some_and(|e| e.contains("hard_bounce")),
        "{suppressed:#}"
    );
    let log = suppressed["attempt_log"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(!log.is_empty(), "{suppressed:#}");
    assert!(
        log.iter().all(|a| a["outcome"] == "failed"),
        "only refused attempts: {log:#?}"
    );
    let (code, output) = worker.terminate().await;
    assert_eq!(code, Some(0), "{output:?}");
    assert_eq!(env.sink.message_count(), 0, "no mail received");
    assert_eq!(
        env.sink.command_count(SmtpCommand::Mail),
        log.len(),
        "one MAIL per logged attempt, none after the suppression"
    );
    assert_eq!(
        env.inbox("u-ivy").await["notifications"]
            .as_array()
            .map(Vec::len),
        Some(1),
        "still one row"
    );
}
