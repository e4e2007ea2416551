//! End-to-end: user preferences through `messaging prefs` and `messaging
//! worker` (real Redis, PostgreSQL and Postfix's `smtp-sink`): opted-out
//! marketing is recorded `skipped` and never mailed, the critical password reset
//! always arrives, marketing email carries RFC 8058 one-click unsubscribe
//! headers, and the token of its URL unsubscribes through the library handler.
//!
//! Run: `cargo test -p messaging-cli --test preferences`.

mod support;

use notification::unsubscribe::{UnsubscribeKey, token_of_url, unsubscribe_one_click};
use notification_store_postgres::{PostgresStore, PostgresStoreConfig};
use serde_json::{Value, json};
use support::{Env, PostfixSink};

const KEY: &str = "e2e-unsubscribe-key-of-at-least-32-bytes";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prefs_get_and_set_change_only_that_users_preferences() {
    support::run(|env| Box::pin(prefs_scenario(env))).await;
}

async fn prefs_scenario(env: &Env) {
    let defaults = env.json(&["prefs", "get", "u-ann", "--json"]).await;
    assert_eq!(defaults["user_id"], "u-ann");
    assert_eq!(defaults["opt_outs"], json!([]));
    assert!(defaults.get("quiet_hours").is_none());

    let set = env
        .json(&[
            "prefs",
            "set",
            "u-ann",
            "--channel",
            "email",
            "--category",
            "marketing",
            "--off",
            "--json",
        ])
        .await;
    assert_eq!(
        set["opt_outs"],
        json!([{"category": "marketing", "channel": "email"}])
    );
    let quiet = env
        .json(&[
            "prefs",
            "set",
            "u-ann",
            "--quiet-hours",
            "22:00-07:00",
            "--time-zone",
            "Europe/Berlin",
            "--json",
        ])
        .await;
    assert_eq!(
        quiet["quiet_hours"],
        json!({"start": "22:00:00", "end": "07:00:00", "time_zone": "Europe/Berlin"})
    );
    assert_eq!(quiet["opt_outs"], set["opt_outs"]);

    let text = env.run(&["prefs", "get", "u-ann"]).await;
    assert_eq!(text.code, Some(0), "{}", text.stderr);
    assert!(
        text.stdout.contains("opted out of marketing by email"),
        "{}",
        text.stdout
    );
    assert!(
        text.stdout
            .contains("quiet hours: 22:00-07:00 Europe/Berlin"),
        "{}",
        text.stdout
    );

    // Another user is untouched.
    let bob = env.json(&["prefs", "get", "u-bob", "--json"]).await;
    assert_eq!(bob["opt_outs"], json!([]));

    // Bad input is a usage error (exit code 2), and changes nothing.
    let bad_zone = env
        .run(&[
            "prefs",
            "set",
            "u-ann",
            "--quiet-hours",
            "22:00-07:00",
            "--time-zone",
            "Mars/Olympus",
        ])
        .await;
    assert_eq!(bad_zone.code, Some(2), "{}", bad_zone.stderr);
    let nothing = env
        .run(&["prefs", "set", "u-ann", "--category", "billing"])
        .await;
    assert_eq!(nothing.code, Some(2), "{}", nothing.stderr);

    // Opting back in removes exactly that opt-out.
    let back = env
        .json(&[
            "prefs",
            "set",
            "u-ann",
            "--channel",
            "email",
            "--category",
            "marketing",
            "--on",
            "--no-quiet-hours",
            "--json",
        ])
        .await;
    assert_eq!(back["opt_outs"], json!([]));
    assert!(back.get("quiet_hours").is_none());
}

fn email(user: &str, to: &str, subject: &str, category: &str) -> String {
    json!({
        "user_id": user,
        "to": to,
        "subject": subject,
        "text": format!("{subject}, {user}"),
        "category": category,
    })
    .to_string()
}

/// The user's notifications as `messaging inbox --json` lists them.
async fn statuses(env: &Env, user: &str) -> Vec<(String, String, Value)> {
    env.inbox(user).await["notifications"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .map(|n| {
            (
                n["title"].as_str().unwrap_or_default().to_owned(),
                n["status"].as_str().unwrap_or_default().to_owned(),
                n["error"].clone(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unsubscribed_user_gets_no_marketing_but_the_password_reset_and_one_click_unsubscribes()
{
    support::run(|env| Box::pin(worker_scenario(env))).await;
}

async fn worker_scenario(env: &Env) {
    let postfix = PostfixSink::start().await;
    env.send_mail_to(postfix.port());
    env.edit_config(|text| {
        text + r#"
[preferences]
critical = ["security"]

[preferences.unsubscribe]
url = "https://example.com/unsubscribe"
mailto = "unsubscribe@example.com"
"#
    });
    let worker = env
        .worker_with_env(&[], &[("MESSAGING_UNSUBSCRIBE_KEY", KEY)])
        .await;

    // Ann unsubscribed from marketing email; Cid from everything; Bob from nothing.
    for args in [
        &[
            "prefs",
            "set",
            "u-ann",
            "--channel",
            "email",
            "--category",
            "marketing",
            "--off",
        ][..],
        &["prefs", "set", "u-cid", "--off"][..],
    ] {
        let outcome = env.run(args).await;
        assert_eq!(outcome.code, Some(0), "{}", outcome.stderr);
    }
    for (user, to) in [
        ("u-ann", "ann@example.com"),
        ("u-bob", "bob@example.com"),
        ("u-cid", "cid@example.com"),
    ] {
        for (subject, category) in [
            ("Spring sale", "marketing"),
            ("Reset your password", "security"),
        ] {
            let published = env
                .run(&[
                    "publish",
                    "notification.email",
                    "--json",
                    &email(user, to, subject, category),
                ])
                .await;
            assert_eq!(published.code, Some(0), "{}", published.stderr);
        }
    }

    // Every event is decided: 4 sent, 2 skipped with the reason.
    env.eventually("six decided notifications", || async {
        let decided = env
            .count(
                "SELECT count(*) FROM {schema}.notifications WHERE status IN ('sent', 'skipped')",
            )
            .await;
        (decided == 6).then_some(())
    })
    .await;
    let ann = statuses(env, "u-ann").await;
    assert!(
        ann.contains(&(
            "Spring sale".into(),
            "skipped".into(),
            json!("opted out of marketing by email")
        )),
        "{ann:?}"
    );
    assert!(
        ann.iter()
            .any(|(t, s, _)| t == "Reset your password" && s == "sent"),
        "{ann:?}"
    );
    let cid = statuses(env, "u-cid").await;
    assert!(
        cid.contains(&(
            "Spring sale".into(),
            "skipped".into(),
            json!("opted out of everything")
        )),
        "{cid:?}"
    );
    assert!(
        cid.iter()
            .any(|(t, s, _)| t == "Reset your password" && s == "sent"),
        "{cid:?}"
    );

    let mails = postfix.wait_for_mails(4).await;
    let to = |rcpt: &str| -> Vec<String> {
        let mut subjects: Vec<String> = mails
            .iter()
            .filter(|mail| mail.recipients == [rcpt])
            .filter_map(|mail| mail.subject.clone())
            .collect();
        subjects.sort();
        subjects
    };
    assert_eq!(to("ann@example.com"), ["Reset your password"]);
    assert_eq!(to("cid@example.com"), ["Reset your password"]);
    assert_eq!(
        to("bob@example.com"),
        ["Reset your password", "Spring sale"]
    );

    // Bob's marketing email carries both headers; the password reset neither.
    let marketing = mails
        .iter()
        .find(|mail| {
            mail.recipients == ["bob@example.com"] && mail.subject.as_deref() == Some("Spring sale")
        })
        .expect("bob's marketing email");
    assert_eq!(
        marketing.header("List-Unsubscribe-Post").as_deref(),
        Some("List-Unsubscribe=One-Click"),
        "{}",
        marketing.raw
    );
    let links = marketing
        .header("List-Unsubscribe")
        .expect("List-Unsubscribe");
    let https = links
        .split(',')
        .map(|link| link.trim().trim_start_matches('<').trim_end_matches('>'))
        .find(|link| link.starts_with("https://example.com/unsubscribe?token="))
        .unwrap_or_else(|| panic!("no https link in {links:?}"))
        .to_owned();
    assert!(links.contains("<mailto:unsubscribe@example.com"), "{links}");
    assert!(
        !links.contains("u-bob"),
        "the user id is not in clear: {links}"
    );
    let reset = mails
        .iter()
        .find(|mail| {
            mail.recipients == ["bob@example.com"]
                && mail.subject.as_deref() == Some("Reset your password")
        })
        .expect("bob's reset");
    assert_eq!(reset.header("List-Unsubscribe"), None);

    // The POST's handler: verify the token, turn marketing email off for Bob.
    let store = PostgresStore::connect(
        PostgresStoreConfig::new(support::database_url()).with_schema(&env.schema),
    )
    .await
    .expect("the store");
    let key = UnsubscribeKey::new(KEY.as_bytes().to_vec()).unwrap();
    let token = token_of_url(&https).expect("a token");
    let done = unsubscribe_one_click(&key, token, &store)
        .await
        .expect("unsubscribed");
    assert_eq!(done.user_id, "u-bob");
    // A tampered token changes nothing.
    let mut tampered = token.to_owned();
    let last = tampered.pop().unwrap();
    tampered.push(if last == 'A' { 'B' } else { 'A' });
    assert!(
        unsubscribe_one_click(&key, &tampered, &store)
            .await
            .is_err()
    );
    store.close().await;
    let bob = env.json(&["prefs", "get", "u-bob", "--json"]).await;
    assert_eq!(
        bob["opt_outs"],
        json!([{"category": "marketing", "channel": "email"}])
    );

    // The next marketing email to Bob is skipped; his reset still arrives.
    for (subject, category) in [("Summer sale", "marketing"), ("New sign-in", "security")] {
        let published = env
            .run(&[
                "publish",
                "notification.email",
                "--json",
                &email("u-bob", "bob@example.com", subject, category),
            ])
            .await;
        assert_eq!(published.code, Some(0), "{}", published.stderr);
    }
    env.eventually("bob's two new notifications decided", || async {
        let decided = env
            .count(
                "SELECT count(*) FROM {schema}.notifications WHERE status IN ('sent', 'skipped')",
            )
            .await;
        (decided == 8).then_some(())
    })
    .await;
    let bob = statuses(env, "u-bob").await;
    assert!(
        bob.iter()
            .any(|(t, s, _)| t == "Summer sale" && s == "skipped"),
        "{bob:?}"
    );
    let mails = postfix.wait_for_mails(5).await;
    assert!(
        mails
            .iter()
            .all(|mail| mail.subject.as_deref() != Some("Summer sale")),
        "{mails:?}"
    );
    assert_eq!(mails.len(), 5);
    let _ = worker.terminate().await;
}

/// `HH:MM` of `at` in Berlin.
fn berlin_hhmm(at: chrono::DateTime<chrono::Utc>) -> String {
    at.with_timezone(&chrono_tz::Europe::Berlin)
        .format("%H:%M")
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inside_quiet_hours_an_email_waits_in_a_durable_delayed_message_that_survives_a_killed_worker()
 {
    support::run(|env| Box::pin(quiet_hours_scenario(env))).await;
}

async fn quiet_hours_scenario(env: &Env) {
    use chrono::{DateTime, Duration as Span, Timelike, Utc};

    let postfix = PostfixSink::start().await;
    env.send_mail_to(postfix.port());
    env.edit_config(|text| text + "\n[preferences]\ncritical = [\"security\"]\n");
    let worker = env.worker(&[]).await;

    // Quiet hours in Berlin from a minute ago until the next whole minute at
    // least 20 s away: the window ends while the test runs.
    let now = Utc::now();
    let minute = now
        .with_second(0)
        .and_then(|t| t.with_nanosecond(0))
        .unwrap();
    let end = if now.second() < 40 {
        minute + Span::minutes(1)
    } else {
        minute + Span::minutes(2)
    };
    let window = format!(
        "{}-{}",
        berlin_hhmm(minute - Span::minutes(1)),
        berlin_hhmm(end)
    );
    let set = env
        .run(&[
            "prefs",
            "set",
            "u-ann",
            "--quiet-hours",
            &window,
            "--time-zone",
            "Europe/Berlin",
        ])
        .await;
    assert_eq!(set.code, Some(0), "{}", set.stderr);

    for (subject, category) in [
        ("Your invoice", "billing"),
        ("Reset your password", "security"),
    ] {
        let published = env
            .run(&[
                "publish",
                "notification.email",
                "--json",
                &email("u-ann", "ann@example.com", subject, category),
            ])
            .await;
        assert_eq!(published.code, Some(0), "{}", published.stderr);
    }
    // The invoice is held, the critical reset is not.
    let (held_id, scheduled_for) = env
        .eventually("the invoice scheduled and the reset sent", || async {
            let inbox = env.inbox("u-ann").await;
            let items = inbox["notifications"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            let invoice = items.iter().find(|n| n["title"] == "Your invoice")?;
            let reset = items.iter().find(|n| n["title"] == "Reset your password")?;
            (invoice["status"] == "scheduled" && reset["status"] == "sent").then(|| {
                (
                    invoice["id"].as_str().unwrap_or_default().to_owned(),
                    invoice["metadata"]["scheduled_for"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned(),
                )
            })
        })
        .await;
    let scheduled_for: DateTime<Utc> = scheduled_for.parse().expect("an RFC 3339 time");
    assert_eq!(scheduled_for, end, "held until the window's end");

    // The worker dies; the delayed message is in Redis; another worker sends it.
    let _ = worker.kill().await;
    let worker = env.worker(&[]).await;
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(180);
    let invoice = loop {
        let inbox = env.inbox("u-ann").await;
        let items = inbox["notifications"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if let Some(invoice) = items
            .into_iter()
            .find(|n| n["title"] == "Your invoice" && n["status"] == "sent")
        {
            break invoice;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the held invoice was never sent"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    assert_eq!(invoice["id"], held_id.as_str(), "sent on its scheduled row");
    let sent_at: DateTime<Utc> = invoice["sent_at"].as_str().unwrap().parse().unwrap();
    assert!(
        sent_at >= scheduled_for,
        "sent at {sent_at}, due at {scheduled_for}"
    );
    let mails = postfix.wait_for_mails(2).await;
    let mut subjects: Vec<_> = mails.iter().filter_map(|m| m.subject.clone()).collect();
    subjects.sort();
    assert_eq!(subjects, ["Reset your password", "Your invoice"]);
    let _ = worker.terminate().await;
}
