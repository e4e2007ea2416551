//! Flow limits across processes: three `messaging worker` processes over one
//! Redis share a per-tenant SMS rate limit from the worker's `[[limits]]`.
//!
//! Over the 30 s the busy tenant's backlog takes, the SMS the provider
//! receives for each tenant never run ahead of the limit: the k-th of a
//! tenant arrives no earlier than its permit is due (the burst of 20, then one
//! every 50 ms since the publish), so any window holds at most the rate plus
//! one interval's burst. Every SMS is sent once, none retried or
//! dead-lettered, and every worker took part (its own metrics say so).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use messaging_model::Message;
use serde_json::{Value, json};
use support::Env;

/// 20 SMS a second per tenant.
const PERMITS: usize = 20;
const INTERVAL_MS: u64 = 1000;
/// The busy tenant: 30 s of backlog past its burst.
const BUSY: usize = PERMITS + 30 * PERMITS;
const QUIET: usize = 60;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_workers_share_a_per_tenant_rate_limit() {
    support::run(|env| Box::pin(scenario(env))).await;
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

async fn scenario(env: &Env) {
    let mut sms = support::HttpProvider::start().await;
    let sms_url = format!("{}/sms", sms.url);
    env.edit_config(|text| {
        text.replace("concurrency = 4", "concurrency = 16")
            + &format!(
                "\n[[limits]]\nname = \"sms-per-tenant\"\nchannel = \"sms\"\nkey = \"tenant\"\nrate = \"{PERMITS}/{INTERVAL_MS}ms\"\n"
            )
    });
    let mut workers = Vec::new();
    let mut metrics = Vec::new();
    for name in ["w1", "w2", "w3"] {
        let addr = format!("127.0.0.1:{}", free_port());
        let flag = format!("--metrics-addr={addr}");
        workers.push(
            env.worker_with_env(&["--consumer", name, &flag], &[("SMS_URL", &sms_url)])
                .await,
        );
        metrics.push(addr);
    }

    let published_at = Instant::now();
    let mut messages = Vec::new();
    for (tenant, count) in [("busy", BUSY), ("quiet", QUIET)] {
        for n in 0..count {
            let request = json!({
                "user_id": format!("u-{tenant}-{n}"),
                "to": "+14155550100",
                "text": format!("{tenant} {n}"),
            });
            messages.push(
                Message::new("notification.sms", request)
                    .unwrap()
                    .with_metadata("tenant", tenant),
            );
        }
    }
    for chunk in messages.chunks(200) {
        env.messaging
            .publish_messages(chunk)
            .await
            .expect("publish");
    }

    let mut arrivals: BTreeMap<String, Vec<Instant>> = BTreeMap::new();
    let mut texts = std::collections::BTreeSet::new();
    while texts.len() < BUSY + QUIET {
        let (_, body, at) = sms.next_timed_request().await;
        let body: Value = serde_json::from_str(&body).unwrap();
        let text = body["text"].as_str().unwrap().to_owned();
        assert!(texts.insert(text.clone()), "{text} was sent twice");
        let tenant = text.split(' ').next().unwrap().to_owned();
        arrivals.entry(tenant).or_default().push(at);
    }

    let interval = Duration::from_millis(INTERVAL_MS) / PERMITS as u32;
    for (tenant, times) in &mut arrivals {
        times.sort();
        for (k, at) in times.iter().enumerate() {
            let earliest = interval * (k + 1).saturating_sub(PERMITS) as u32;
            let since = at.duration_since(published_at);
            assert!(
                since + Duration::from_millis(5) >= earliest,
                "{tenant}: SMS {k} arrived {since:?} after the publish, before its permit ({earliest:?})"
            );
        }
        // Within any 30 s: the rate plus one interval's burst.
        let window = Duration::from_secs(30);
        for (i, first) in times.iter().enumerate() {
            let inside = times[i..]
                .iter()
                .take_while(|t| **t < *first + window)
                .count();
            assert!(inside <= PERMITS * 31, "{tenant}: {inside} SMS within 30 s");
        }
    }
    let busy_span = arrivals["busy"]
        .last()
        .unwrap()
        .duration_since(published_at);
    println!(
        "busy tenant: {BUSY} SMS in {busy_span:?} ({:.1}/s against a limit of {PERMITS}/s, burst {PERMITS})",
        BUSY as f64 / busy_span.as_secs_f64()
    );

    // Every worker took part, and the limit is what held them back.
    let mut limited = 0.0;
    for addr in &metrics {
        let body = support::scrape(addr)
            .await
            .expect("the worker serves metrics");
        let handled = support::metric(&body, "messaging_handled_total", "notification.sms");
        assert!(handled > 0.0, "worker at {addr} handled no SMS:\n{body}");
        limited += support::metric(&body, "messaging_rate_limited_total", "notification.sms");
    }
    assert!(limited > 0.0, "no message was ever over the limit");
    let sent = env
        .count("SELECT count(*) FROM {schema}.notifications WHERE status = 'sent' AND kind = 'sms'")
        .await;
    assert_eq!(sent as usize, BUSY + QUIET);
    let stats = env.json(&["stats", "notification.sms", "--json"]).await;
    assert_eq!(stats[0]["dead_lettered"], 0, "{stats}");
    for worker in workers {
        let (code, log) = worker.terminate().await;
        assert_eq!(code, Some(0), "{}", log.join("\n"));
    }
}
