//! End-to-end: `[[digests]]` through two `messaging worker` processes (real
//! Redis, PostgreSQL, Postfix's `smtp-sink`): a window flushes by count, and a
//! window left open by a killed worker is flushed by time by the other, each
//! into exactly one email listing its events once.
//!
//! Run: `cargo test -p messaging-cli --test digests`.

mod support;

use messaging_model::{MessageTemplate, TemplateKind};
use notification::store::TemplateStore;
use notification_store_postgres::{PostgresStore, PostgresStoreConfig};
use serde_json::json;
use support::{Env, PostfixSink};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn digests_are_sent_once_per_window_across_workers_and_a_killed_one() {
    support::run(|env| Box::pin(scenario(env))).await;
}

async fn publish(env: &Env, text: &str) {
    let payload = json!({"user_id": "u-ann", "email": "ann@example.com", "text": text}).to_string();
    let published = env
        .run(&["publish", "comment.posted", "--json", &payload])
        .await;
    assert_eq!(published.code, Some(0), "{}", published.stderr);
}

async fn scenario(env: &Env) {
    let postfix = PostfixSink::start().await;
    env.send_mail_to(postfix.port());
    env.edit_config(|text| {
        text + r#"
[[digests]]
topic = "comment.posted"
key = "comments"
template = "comments_digest"
max_count = 3
max_age = "4s"
"#
    });
    // The digest's template, in the worker's schema.
    let store = PostgresStore::connect(
        PostgresStoreConfig::new(support::database_url()).with_schema(&env.schema),
    )
    .await
    .expect("the store");
    store.migrate().await.expect("migrate");
    store
        .save(
            &MessageTemplate::new(
                "comments_digest",
                TemplateKind::Email,
                "{{#each events}}[{{this.text}}]{{/each}}",
            )
            .with_subject("{{count}} new comments")
            .with_variables(["events", "count"]),
        )
        .await
        .expect("the template");
    store.close().await;

    let first = env.worker(&["--consumer", "digest-a"]).await;
    let second = env.worker(&["--consumer", "digest-b"]).await;

    // By count: three events, one digest.
    for text in ["1", "2", "3"] {
        publish(env, text).await;
    }
    let mails = postfix.wait_for_mails(1).await;
    assert!(mails[0].raw.contains("[1][2][3]"), "{}", mails[0].raw);
    assert_eq!(mails[0].subject.as_deref(), Some("3 new comments"));

    // Mid-window: two events collected, then a worker dies; the window's
    // delayed flush is in Redis and the other worker sends it.
    for text in ["4", "5"] {
        publish(env, text).await;
    }
    env.eventually("both events collected", || async {
        let collected = env
            .count("SELECT count(*) FROM {schema}.notification_digest_events")
            .await;
        (collected == 5).then_some(())
    })
    .await;
    let _ = first.kill().await;
    let mails = postfix.wait_for_mails(2).await;
    let bodies: Vec<&str> = mails.iter().map(|mail| mail.raw.as_str()).collect();
    assert!(
        bodies.iter().any(|raw| raw.contains("[4][5]")),
        "{bodies:?}"
    );
    assert_eq!(mails.len(), 2);
    // One notification per window, both sent.
    env.eventually("two digests recorded sent", || async {
        let sent = env
            .count("SELECT count(*) FROM {schema}.notifications WHERE status = 'sent'")
            .await;
        (sent == 2).then_some(())
    })
    .await;
    assert_eq!(
        env.count(
            "SELECT count(*) FROM {schema}.notification_digest_windows WHERE closed_at IS NULL"
        )
        .await,
        0
    );
    let _ = second.terminate().await;
}
