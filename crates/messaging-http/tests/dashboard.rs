//! The inbox dashboard in a real browser: headless Chromium (Debian's
//! `chromium`) loads `/dashboard` from a real server over Redis and
//! PostgreSQL, and the test reads the page as it rendered it (`--dump-dom`).

mod support;

use std::time::Duration;

use messaging_model::NotificationKind;
use support::Server;

const CHROMIUM: &str = "/usr/bin/chromium";

/// The page's DOM after scripts ran (Chromium's virtual time: no sleep here).
async fn rendered(server: &Server, fragment: &str) -> String {
    assert!(
        std::path::Path::new(CHROMIUM).exists(),
        "{CHROMIUM} is missing: install Debian's `chromium` package (scripts/ci-prepare.sh does)"
    );
    let profile = std::env::temp_dir().join(format!("chromium-{}", uuid::Uuid::now_v7().simple()));
    let output = tokio::time::timeout(
        Duration::from_secs(60),
        tokio::process::Command::new(CHROMIUM)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--disable-extensions",
                "--virtual-time-budget=5000",
                "--dump-dom",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg(format!("{}/dashboard#{fragment}", server.base))
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("chromium finishes")
    .expect("chromium runs");
    let _ = std::fs::remove_dir_all(&profile);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_shows_the_users_inbox_and_escapes_what_it_shows() {
    support::run(|server| {
        Box::pin(async move {
            server
                .record("ada", NotificationKind::System, "Welcome aboard")
                .await;
            let read = server
                .record("ada", NotificationKind::Email, "Your receipt")
                .await;
            server.store_mark_read("ada", read.id).await;
            server
                .record(
                    "ada",
                    NotificationKind::System,
                    "<img src=x onerror=alert(1)>",
                )
                .await;
            server
                .record("bob", NotificationKind::System, "Bob's only")
                .await;

            let dom = rendered(server, &format!("token={}", server.token("ada"))).await;
            assert!(dom.contains("Welcome aboard"), "{dom}");
            assert!(dom.contains("Your receipt"), "{dom}");
            assert!(!dom.contains("Bob's only"), "{dom}");
            assert!(dom.contains(r#"<span id="unread">2</span>"#), "{dom}");
            assert_eq!(dom.matches(r#"class="unread""#).count(), 2, "{dom}");
            assert!(
                dom.contains("&lt;img src=x onerror=alert(1)&gt;"),
                "shown as text: {dom}"
            );
            assert!(!dom.contains("<img"), "never parsed as HTML: {dom}");
        })
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_says_so_when_the_token_is_refused() {
    support::run(|server| {
        Box::pin(async move {
            let dom = rendered(server, "token=not-a-token").await;
            assert!(dom.contains("malformed token"), "{dom}");
            assert!(
                dom.contains(r#"<ul id="inbox"></ul>"#),
                "nothing listed: {dom}"
            );
        })
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_is_served_with_a_strict_content_security_policy() {
    support::run(|server| {
        Box::pin(async move {
            for path in ["/dashboard", "/dashboard/app.js", "/dashboard/app.css"] {
                let response = server.http.get(server.url(path)).send().await.unwrap();
                assert_eq!(response.status(), 200, "{path}");
                let policy = response.headers()["content-security-policy"]
                    .to_str()
                    .unwrap()
                    .to_owned();
                assert!(
                    policy.contains("default-src 'none'") && policy.contains("script-src 'self'"),
                    "{policy}"
                );
                assert_eq!(response.headers()["x-content-type-options"], "nosniff");
            }
        })
    })
    .await;
}
