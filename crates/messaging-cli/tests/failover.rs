//! The worker with `[[smtp.fallback]]`: the first relay (the project's sink)
//! refuses with `421`, the fallback (Postfix's smtp-sink) takes each email
//! once, and the inbox's attempt log names both relays.
//!
//! Run: `cargo test -p messaging-cli --test failover`.

mod support;

use smtp_sink::{Reply, SmtpCommand};
use support::{Env, HttpProvider, PostfixSink};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worker_fails_over_to_the_fallback_relay_and_each_email_arrives_once() {
    support::run(|env| Box::pin(scenario(env))).await;
}

async fn scenario(env: &Env) {
    env.sink.fail_next(
        SmtpCommand::Mail,
        usize::MAX,
        Reply::new(421, "4.3.2 service not available"),
    );
    let postfix = PostfixSink::start().await;
    env.edit_config(|text| {
        text.replace("[smtp]\n", "[smtp]\nname = \"relay-a\"\n")
            + &format!(
                "\n[[smtp.fallback]]\nname = \"relay-b\"\nhost = \"127.0.0.1\"\nport = {}\nsecurity = \"none\"\nfrom = \"noreply@e2e.invalid\"\ntimeout = \"5s\"\n\n[smtp.breaker]\nfailure_threshold = 100\n",
                postfix.port()
            )
    });
    let worker = env.worker(&[]).await;
    for (user, to) in [("u-a", "a@example.com"), ("u-b", "b@example.com")] {
        let body = format!(r#"{{"user_id":"{user}","to":"{to}","subject":"Hello","text":"Hi"}}"#);
        let published = env
            .run(&["publish", "notification.email", "--json", &body])
            .await;
        assert_eq!(published.code, Some(0), "{}", published.stderr);
    }
    postfix.wait_for_mails(2).await;
    let inbox = env
        .eventually("a's notification sent", || async {
            let inbox = env.json(&["inbox", "u-a", "--attempts", "--json"]).await;
            (inbox["notifications"][0]["status"] == "sent").then_some(inbox)
        })
        .await;
    let log = inbox["notifications"][0]["attempt_log"]
        .as_array()
        .unwrap()
        .clone();
    let providers: Vec<(&str, &str)> = log
        .iter()
        .map(|a| {
            (
                a["provider"].as_str().unwrap(),
                a["outcome"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        providers,
        [("relay-b", "sent"), ("relay-a", "failed")],
        "{log:#?}"
    );
    let (code, output) = worker.terminate().await;
    assert_eq!(code, Some(0), "{output:?}");
    assert_eq!(
        postfix.received(),
        [
            ("a@example.com".to_owned(), 1),
            ("b@example.com".to_owned(), 1)
        ]
        .into_iter()
        .collect(),
        "each email once, at the fallback"
    );
    assert_eq!(env.sink.message_count(), 0, "the refusing relay took none");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worker_fails_over_to_the_fallback_sms_provider_and_each_sms_arrives_once() {
    support::run(|env| Box::pin(sms_scenario(env))).await;
}

/// `[[sms.fallback]]`: the first HTTP provider answers `503` (it did not take
/// the message), the second accepts; each SMS reaches the second once, and
/// the attempt log names both.
async fn sms_scenario(env: &Env) {
    let mut down = HttpProvider::start_answering(503).await;
    let mut up = HttpProvider::start().await;
    env.edit_config(|text| {
        text + &format!(
            "\n[sms]\nname = \"sms-a\"\nurl = \"{}/sms\"\ntimeout = \"5s\"\n\n[[sms.fallback]]\nname = \"sms-b\"\nurl = \"{}/sms\"\ntimeout = \"5s\"\n\n[sms.breaker]\nfailure_threshold = 100\n",
            down.url, up.url
        )
    });
    let worker = env.worker(&[]).await;
    let phones = [("u-s1", "+14155550101"), ("u-s2", "+14155550102")];
    for (user, to) in phones {
        let body = format!(r#"{{"user_id":"{user}","to":"{to}","text":"code 1234"}}"#);
        let published = env
            .run(&["publish", "notification.sms", "--json", &body])
            .await;
        assert_eq!(published.code, Some(0), "{}", published.stderr);
    }
    for (user, _) in phones {
        let inbox = env
            .eventually("the SMS recorded sent", || async {
                let inbox = env.json(&["inbox", user, "--attempts", "--json"]).await;
                (inbox["notifications"][0]["status"] == "sent").then_some(inbox)
            })
            .await;
        let log = inbox["notifications"][0]["attempt_log"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let providers: Vec<(&str, &str)> = log
            .iter()
            .map(|a| {
                (
                    a["provider"].as_str().unwrap_or_default(),
                    a["outcome"].as_str().unwrap_or_default(),
                )
            })
            .collect();
        assert_eq!(
            providers,
            [("sms-b", "sent"), ("sms-a", "failed")],
            "{log:#?}"
        );
        assert!(
            log[1]["error"].as_str().is_some_and(|e| e.contains("503")),
            "the refusal is logged with its status: {log:#?}"
        );
    }
    let (code, output) = worker.terminate().await;
    assert_eq!(code, Some(0), "{output:?}");
    let mut received: Vec<String> = up
        .received_requests()
        .into_iter()
        .map(|(head, body)| {
            assert!(head.starts_with("POST /sms"), "{head}");
            let body: serde_json::Value = serde_json::from_str(&body).unwrap();
            body["to"].as_str().unwrap_or_default().to_owned()
        })
        .collect();
    received.sort();
    assert_eq!(
        received,
        ["+14155550101", "+14155550102"],
        "each SMS once, at the fallback"
    );
    assert!(
        !down.received_requests().is_empty(),
        "the first provider was asked first"
    );
}
