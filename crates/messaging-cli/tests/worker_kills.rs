//! A worker killed again and again sends each notification once and leaves one
//! settled inbox row per event.
//!
//! The real `messaging worker` binary handles 5,000 `user.registered` events
//! against Postfix's `smtp-sink` (an SMTP server that is not this project's),
//! with its notifications in PostgreSQL and its events in Redis, and is
//! SIGKILLed 12 times on the way (each time after another stretch of progress),
//! then restarted under the same consumer name. Afterwards:
//!
//! - lost: 0, every event has exactly one inbox row, and no row is left
//!   `pending`, `sending` or `failed`;
//! - duplicates (emails received more than once, counted from the SMTP server's
//!   own dump files) are no more than the attempts the attempt log records as
//!   `unknown` (a send interrupted after it may have reached the server), under
//!   the default `resend` policy; and exactly 0 under `mark_unknown`, where
//!   those rows end `unknown` instead.
//!
//! Needs `/usr/sbin/smtp-sink` (Debian package `postfix`; `scripts/ci-prepare.sh`
//! installs it), `REDIS_URL` and `DATABASE_URL`.
//! Run: `cargo test -p messaging-cli --test worker_kills -- --nocapture` (prints the figures).

mod support;

use std::collections::BTreeMap;

use serde_json::json;
use support::{Env, PostfixSink};

const EVENTS: usize = 5_000;
const KILLS: usize = 12;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_workers_resend_only_what_may_have_reached_the_server() {
    support::run(|env| Box::pin(kills_scenario(env, "resend"))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_workers_never_duplicate_under_mark_unknown() {
    support::run(|env| Box::pin(kills_scenario(env, "mark_unknown"))).await;
}

const FINAL: &str =
    "SELECT count(*) FROM {schema}.notifications WHERE status IN ('sent', 'unknown')";

async fn kills_scenario(env: &Env, policy: &str) {
    let sink = PostfixSink::start().await;
    env.send_mail_to(sink.port());
    env.edit_config(|text| {
        let text = text.replace(
            "concurrency = 4",
            "concurrency = 8\nconsumer = \"killed-worker\"",
        );
        format!("{text}\n[delivery]\ninterrupted_email = \"{policy}\"\n")
    });

    for chunk in (0..EVENTS).collect::<Vec<_>>().chunks(1_000) {
        let batch: Vec<_> = chunk
            .iter()
            .map(|n| json!({"user_id": format!("u-{n}"), "email": format!("user{n}@example.com"), "name": format!("User {n}")}))
            .collect();
        env.messaging
            .publish_batch("user.registered", batch)
            .await
            .expect("the events are published");
    }

    // Kill after each stretch of progress, so every kill lands mid-work.
    let stretch = (EVENTS / (KILLS + 2)) as i64;
    let mut kills = 0;
    let mut worker = env.worker(&[]).await;
    while kills < KILLS {
        let target = env.count(FINAL).await + stretch;
        env.eventually("progress before the next kill", || async {
            (env.count(FINAL).await >= target).then_some(())
        })
        .await;
        worker.kill().await;
        kills += 1;
        worker = env.worker(&[]).await;
    }
    let done = env
        .eventually("every event settled", || async {
            let settled = env.count(FINAL).await;
            (settled == EVENTS as i64).then_some(settled)
        })
        .await;
    let (code, log) = worker.terminate().await;
    assert_eq!(code, Some(0), "{}", log.join("\n"));

    // Lost 0, one row per event, every row settled.
    let rows_per_user = env
        .counts("SELECT user_id::text, count(*) FROM {schema}.notifications GROUP BY user_id")
        .await;
    assert_eq!(rows_per_user.len(), EVENTS, "every event has its row");
    let extra: Vec<_> = rows_per_user
        .iter()
        .filter(|(_, rows)| *rows != 1)
        .collect();
    assert!(extra.is_empty(), "more than one row for: {extra:?}");
    let statuses: BTreeMap<String, i64> = env
        .counts("SELECT status, count(*) FROM {schema}.notifications GROUP BY status")
        .await
        .into_iter()
        .collect();
    let unknown_rows = statuses.get("unknown").copied().unwrap_or(0);
    assert_eq!(
        statuses.get("sent").copied().unwrap_or(0) + unknown_rows,
        done,
        "no row left pending, sending or failed: {statuses:?}"
    );

    let received = sink.received();
    let unknown_attempts = env
        .count("SELECT count(*) FROM {schema}.notification_attempts WHERE outcome = 'unknown'")
        .await;
    let duplicates: usize = received
        .values()
        .map(|&count| count.saturating_sub(1))
        .sum();
    let missing: Vec<String> = (0..EVENTS)
        .map(|n| format!("user{n}@example.com"))
        .filter(|address| !received.contains_key(address))
        .collect();
    println!(
        "policy {policy}: {EVENTS} events, {kills} SIGKILLs; rows {statuses:?}; \
         unknown attempts {unknown_attempts}; emails received {}, duplicates {duplicates}, \
         never received {}",
        received.values().sum::<usize>(),
        missing.len()
    );
    assert!(
        duplicates as i64 <= unknown_attempts,
        "{duplicates} duplicate emails but only {unknown_attempts} sends of unknown outcome"
    );
    match policy {
        "mark_unknown" => {
            assert_eq!(duplicates, 0, "mark_unknown never sends twice");
            // A row marked unknown may or may not have reached the server;
            // every other one did.
            assert!(
                missing.len() as i64 <= unknown_rows,
                "{} emails never arrived but only {unknown_rows} rows are unknown",
                missing.len()
            );
        }
        _ => {
            assert_eq!(unknown_rows, 0, "resend leaves no row unknown");
            assert!(missing.is_empty(), "never received: {missing:?}");
        }
    }

    // What an operator sees for one user, through the CLI.
    let inbox = env.json(&["inbox", "u-0", "--attempts", "--json"]).await;
    let row = &inbox["notifications"][0];
    assert!(
        row["attempt_log"]
            .as_array()
            .is_some_and(|log| !log.is_empty()),
        "{inbox:#}"
    );
}
