//! One retry layer: the SMTP server answers `451` for a while, the worker's
//! subscriptions retry on their schedule, and every email arrives once, with no
//! operator action (no `dlq replay`).
//!
//! The outage lasts until every event's email has been refused at least once
//! (its attempt log says so), however slow the machine, and the schedule
//! (configured in the worker's TOML) is 250 ms doubling up to 1 s, 10 retries:
//! the outage spans several retries, as a 20 s outage spans several retries of
//! the default minutes-scale schedule.
//! Before the fix, each message's own `max_retry` (2 here) and the channel's
//! in-place retries dead-lettered every event within about a second. Each
//! user's attempt log (`messaging inbox USER --attempts --json`) shows the
//! refused attempts and the one that was accepted.
//!
//! Run: `cargo test -p messaging-cli --test smtp_outage` with `REDIS_URL` and
//! `DATABASE_URL` set.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::json;
use smtp_sink::{Reply, SmtpCommand};
use support::{DEADLINE, Env};

const EVENTS: usize = 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_email_arrives_once_after_the_smtp_server_answers_451_for_a_while() {
    support::run(|env| Box::pin(outage_scenario(env))).await;
}

async fn outage_scenario(env: &Env) {
    env.edit_config(|text| {
        text.replace(
            "handler_max_retry = 2\ninitial_delay = \"50ms\"\nmax_delay = \"200ms\"",
            "handler_max_retry = 10\ninitial_delay = \"250ms\"\nmax_delay = \"1s\"",
        )
    });
    let worker = env.worker(&[]).await;
    // Until cleared below.
    env.sink.fail_for(
        SmtpCommand::Rcpt,
        Duration::from_secs(3600),
        Reply::new(451, "4.3.0 try again later"),
    );

    for n in 0..EVENTS {
        env.messaging
            .publish(
                "user.registered",
                json!({"user_id": format!("u-{n}"), "email": format!("user{n}@example.com"), "name": format!("User {n}")}),
            )
            .await
            .expect("the event is published");
    }
    // The outage ends once every event has been refused (a timed outage left
    // an event first tried after it on a loaded machine).
    env.eventually("every event refused at least once", || async {
        let refused = env
            .count("SELECT count(DISTINCT notification_id) FROM {schema}.notification_attempts WHERE outcome = 'failed'")
            .await;
        (refused >= EVENTS as i64).then_some(())
    })
    .await;
    env.sink.clear_failures();

    let mails = env
        .sink
        .wait_for_messages(EVENTS, DEADLINE)
        .await
        .expect("every email arrives once the server accepts again");
    assert!(
        env.sink.command_count(SmtpCommand::Rcpt) > EVENTS,
        "the outage refused some attempts"
    );
    env.eventually("every notification recorded as sent", || async {
        (env.sent_notifications().await == EVENTS as i64).then_some(())
    })
    .await;

    let (code, log) = worker.terminate().await;
    assert_eq!(code, Some(0), "{}", log.join("\n"));

    // Once each: no duplicate sends, and nothing was dead-lettered.
    let mut per_recipient = BTreeMap::new();
    for mail in env.sink.messages() {
        for recipient in &mail.recipients {
            *per_recipient.entry(recipient.clone()).or_insert(0) += 1;
        }
    }
    assert_eq!(mails.len(), EVENTS);
    assert_eq!(per_recipient.len(), EVENTS, "{per_recipient:?}");
    assert!(
        per_recipient.values().all(|&count| count == 1),
        "{per_recipient:?}"
    );
    let dead = env
        .messaging
        .dead_letters("user.registered", 100)
        .await
        .expect("the dead-letter queue is read");
    assert!(
        dead.is_empty(),
        "nothing is dead-lettered: {dead:?}\n{}",
        log.join("\n")
    );

    // One inbox row per event, whatever attempts it took, and every attempt in
    // its log: the refused ones `failed` with the server's reply, the last `sent`.
    let mut refused = 0;
    for n in 0..EVENTS {
        let inbox = env
            .json(&["inbox", &format!("u-{n}"), "--attempts", "--json"])
            .await;
        let rows = inbox["notifications"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        assert_eq!(rows.len(), 1, "u-{n}: {inbox:#}");
        assert_eq!(rows[0]["status"], "sent", "u-{n}: {inbox:#}");
        let attempts = rows[0]["attempt_log"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        assert_eq!(
            rows[0]["attempts"].as_u64(),
            Some(attempts.len() as u64),
            "u-{n}: {inbox:#}"
        );
        let (last, earlier) = attempts.split_last().expect("at least one attempt");
        assert_eq!(last["outcome"], "sent", "u-{n}: {inbox:#}");
        for attempt in earlier {
            assert_eq!(attempt["outcome"], "failed", "u-{n}: {inbox:#}");
            assert!(
                attempt["error"]
                    .as_str()
                    .unwrap_or_default()
                    .contains("451"),
                "u-{n}: {inbox:#}"
            );
            assert_eq!(attempt["provider"], "smtp");
        }
        refused += earlier.len();
    }
    assert!(
        refused >= EVENTS,
        "the outage shows in the attempt logs ({refused} refusals)"
    );
}
