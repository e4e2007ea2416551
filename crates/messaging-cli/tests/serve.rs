//! `messaging serve` as users run it: the binary on a free loopback port over
//! real Redis and PostgreSQL, a `messaging worker` recording notifications
//! from published events, and the HTTP API's event stream pushing them.
//!
//! Run: `cargo test -p messaging-cli --test serve` (with REDIS_URL and DATABASE_URL).

mod support;

use serde_json::{Value, json};
use support::{DEADLINE, Env};

const USER_KEY: &str = "serve-test-user-key-0123456789abcdef0123";
const ADMIN_TOKEN: &str = "serve-test-admin-token-0123456789abcdef";
const SECRETS: [(&str, &str); 3] = [
    ("MESSAGING_HTTP_USER_KEY", USER_KEY),
    ("MESSAGING_HTTP_ADMIN_TOKEN", ADMIN_TOKEN),
    ("MESSAGING_POSTMARK_CREDENTIALS", "hooks:s3cret"),
];

/// `messaging serve` on a free port: the process and its base URL.
async fn serve(env: &Env) -> (support::Worker, String) {
    let process = env
        .spawn_ready(&["serve", "--bind", "127.0.0.1:0"], &SECRETS, "serve ready")
        .await;
    let line = process
        .log
        .iter()
        .find_map(|line| line.strip_prefix("serve ready "))
        .expect("the ready line names the address")
        .to_owned();
    (process, format!("http://{line}"))
}

/// Reads `event:`/`data:` blocks off an event stream.
struct EventStream {
    response: reqwest::Response,
    /// Bytes as they came: a chunk may end inside a character.
    buffer: Vec<u8>,
}

impl EventStream {
    /// The next event's name and JSON data (keep-alive comments skipped).
    async fn next(&mut self) -> (String, Value) {
        tokio::time::timeout(DEADLINE, async {
            loop {
                if let Some(end) = self.buffer.windows(2).position(|pair| pair == b"\n\n") {
                    let block: Vec<u8> = self.buffer.drain(..end + 2).collect();
                    let block = String::from_utf8(block).expect("an event is UTF-8");
                    let name = block.lines().find_map(|l| l.strip_prefix("event:"));
                    let data = block.lines().find_map(|l| l.strip_prefix("data:"));
                    if let (Some(name), Some(data)) = (name, data) {
                        return (
                            name.trim().to_owned(),
                            serde_json::from_str(data.trim()).unwrap(),
                        );
                    }
                    continue;
                }
                let chunk = self
                    .response
                    .chunk()
                    .await
                    .unwrap()
                    .expect("the stream stays open");
                self.buffer.extend_from_slice(&chunk);
            }
        })
        .await
        .expect("an event arrives")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_event_streams_of_two_replicas_push_a_notification_the_worker_recorded() {
    support::run(|env| Box::pin(pushes_scenario(env))).await;
}

async fn pushes_scenario(env: &Env) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let worker = env.worker(&[]).await;
    let (server, base) = serve(env).await;
    let http = reqwest::Client::new();

    let minted = env
        .command(&["token", "u-bob", "--ttl", "10m"])
        .env("MESSAGING_HTTP_USER_KEY", USER_KEY)
        .output()
        .await
        .unwrap();
    assert!(
        minted.status.success(),
        "{}",
        String::from_utf8_lossy(&minted.stderr)
    );
    let token = String::from_utf8(minted.stdout).unwrap().trim().to_owned();

    let response = http
        .get(format!("{base}/v1/me/events"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let mut stream = EventStream {
        response,
        buffer: Vec::new(),
    };
    assert_eq!(
        stream.next().await,
        ("unread".to_owned(), json!({"unread": 0}))
    );
    // A second replica: its stream hears the same notifications.
    let (replica, replica_base) = serve(env).await;
    let mut replica_stream = EventStream {
        response: http
            .get(format!("{replica_base}/v1/me/events"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap(),
        buffer: Vec::new(),
    };
    assert_eq!(
        replica_stream.next().await,
        ("unread".to_owned(), json!({"unread": 0}))
    );

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

    // The worker records the in-app notice (and the email's row): the stream
    // gets each as it is recorded.
    let notice = loop {
        let (name, data) = stream.next().await;
        if name == "notification" && data["kind"] == "system" {
            break data;
        }
    };
    assert_eq!(notice["title"], "Wallet recharged");
    let on_the_replica = loop {
        let (name, data) = replica_stream.next().await;
        if name == "notification" && data["kind"] == "system" {
            break data;
        }
    };
    assert_eq!(on_the_replica["id"], notice["id"]);
    assert!(
        notice["content"].as_str().unwrap().contains("40.00 EUR"),
        "{notice}"
    );

    let inbox: Value = http
        .get(format!("{base}/v1/me/notifications?kind=system"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(inbox["items"][0]["id"], notice["id"]);
    let topics = http
        .get(format!("{base}/v1/admin/topics"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(topics.status(), 200);
    let topics: Value = topics.json().await.unwrap();
    assert!(
        topics["topics"]
            .as_array()
            .unwrap()
            .contains(&json!("wallet.recharged")),
        "{topics}"
    );

    // The Postmark webhook is on (its credentials were given), Mailgun's is not.
    let postmark = http
        .post(format!("{base}/v1/webhooks/postmark"))
        .basic_auth("hooks", Some("wrong"))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(postmark.status(), 401);
    let mailgun = http
        .post(format!("{base}/v1/webhooks/mailgun"))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(mailgun.status(), 404);

    // SIGTERM with a stream open: the stream is closed and serve exits 0.
    let (code, log) = replica.terminate().await;
    assert_eq!(code, Some(0), "{}", log.join("\n"));
    let (code, log) = server.terminate().await;
    assert_eq!(code, Some(0), "{}", log.join("\n"));
    let (code, _) = worker.terminate().await;
    assert_eq!(code, Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_refuses_to_start_without_its_keys() {
    support::run(|env| Box::pin(refuses_scenario(env))).await;
}

async fn refuses_scenario(env: &Env) {
    let run = |envs: &'static [(&'static str, &'static str)]| async move {
        let output = env
            .command(&["serve", "--bind", "127.0.0.1:0"])
            .env_remove("MESSAGING_HTTP_USER_KEY")
            .env_remove("MESSAGING_HTTP_ADMIN_TOKEN")
            .envs(envs.iter().copied())
            .output()
            .await
            .unwrap();
        (
            output.status.code(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };
    let (code, stderr) = run(&[]).await;
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("the user token key is not set"), "{stderr}");
    assert!(stderr.contains("MESSAGING_HTTP_USER_KEY"), "{stderr}");

    let (code, stderr) = run(&[("MESSAGING_HTTP_USER_KEY", USER_KEY)]).await;
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("the admin token is not set"), "{stderr}");

    let (code, stderr) = run(&[
        ("MESSAGING_HTTP_USER_KEY", "short"),
        ("MESSAGING_HTTP_ADMIN_TOKEN", ADMIN_TOKEN),
    ])
    .await;
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("at least 32 bytes"), "{stderr}");
    assert!(!stderr.contains("short"), "the key is not echoed: {stderr}");
}
