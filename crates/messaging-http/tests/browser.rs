//! The dashboard in a real browser: headless Chromium (Debian's package)
//! against a real server over the test's Redis and PostgreSQL. Each test
//! writes a screenshot of every page it checks to
//! `target/tmp/screenshots/` (the test artifacts).

mod support;

use std::time::Duration;

use messaging_core::HandlerError;
use messaging_model::{Message, NotificationKind};
use serde_json::json;
use support::browser::Browser;
use support::{ADMIN_TOKEN, DEADLINE};

/// Signs in on the page's admin form.
async fn sign_in_as_admin(browser: &Browser) {
    let field = browser.find("#admin-token").await;
    browser.type_into(&field, ADMIN_TOKEN).await;
    let button = browser.find("#admin-login").await;
    browser.click(&button).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_shows_a_topics_stats_and_a_click_replays_a_dead_letter() {
    support::run(|server| {
        Box::pin(async move {
            let topic = "orders.placed";
            server.messaging.create_topic(topic).await.unwrap();
            // A consumer that refuses order 1 for good and takes the others.
            server
                .messaging
                .subscribe(topic, |message: Message| async move {
                    if message.payload["n"] == 1 {
                        Err(HandlerError::permanent("bad address for order 1"))
                    } else {
                        Ok(())
                    }
                })
                .await
                .unwrap();
            for n in 1..=3 {
                server
                    .messaging
                    .publish(topic, json!({"n": n}))
                    .await
                    .unwrap();
            }
            let stats_path = format!("/v1/admin/topics/{topic}/stats");
            messaging_test_support::eventually(
                "one dead letter and nothing pending",
                DEADLINE,
                Duration::from_millis(50),
                || async {
                    let (_, stats) = server.get(&stats_path, ADMIN_TOKEN).await;
                    (stats["dead_lettered"] == 1
                        && stats["groups"][0]["pending"] == 0
                        && stats["groups"][0]["lag"] == 0)
                        .then_some(())
                },
            )
            .await;
            // Nobody consumes from here on: a replayed message stays in the topic.
            server.messaging.unsubscribe(topic).await.unwrap();

            let browser = Browser::start().await;
            // The overview: the topic's row with its figures.
            browser.goto(&server.url("/dashboard")).await;
            sign_in_as_admin(&browser).await;
            let row = format!("#topics tr[data-topic=\"{topic}\"]");
            browser.wait_for_text(&format!("{row} .length"), "3").await;
            browser.wait_for_text(&format!("{row} .dead"), "1").await;
            browser.wait_for_text(&format!("{row} .groups"), "1").await;
            browser.wait_for_text(&format!("{row} .pending"), "0").await;
            browser.screenshot("dashboard-overview").await;

            // The topic: its consumer group.
            let link = browser.find(&format!("{row} a.topic-link")).await;
            browser.click(&link).await;
            browser.wait_for_text("#topic-name", topic).await;
            browser
                .wait_for_text("#groups tr[data-group=\"default\"] .lag", "0")
                .await;
            browser.wait_for_text("#topic-stats .dead", "1").await;
            browser.screenshot("dashboard-topic").await;

            // Its dead letters: inspect, then replay by a click.
            let dead = browser.find("#dead-link").await;
            browser.click(&dead).await;
            let entry = browser.find("#dead-letters tr[data-id]").await;
            assert!(
                browser
                    .text(&entry)
                    .await
                    .contains("bad address for order 1")
            );
            let inspect = browser
                .find("#dead-letters tr[data-id] button.inspect")
                .await;
            browser.click(&inspect).await;
            let shown = browser.find("#dl-inspect").await;
            browser
                .until("the dead letter's payload in the inspector", || async {
                    browser
                        .text(&shown)
                        .await
                        .contains("\"n\": 1")
                        .then_some(())
                })
                .await;
            let replay = browser
                .find("#dead-letters tr[data-id] button.replay")
                .await;
            browser.click(&replay).await;
            browser
                .wait_for_text("#dead-letters tr[data-id] .replayed-mark", "replayed")
                .await;
            browser.screenshot("dashboard-dead-letters").await;
            browser.close().await;

            // The click replayed it: no dead letter left, and order 1 is back
            // in the topic for the group.
            let (_, stats) = server.get(&stats_path, ADMIN_TOKEN).await;
            assert_eq!(stats["dead_lettered"], 0, "{stats}");
            let (seen, mut received) = tokio::sync::mpsc::unbounded_channel();
            server
                .messaging
                .subscribe(topic, move |message: Message| {
                    let seen = seen.clone();
                    async move {
                        let _ = seen.send(message.payload["n"].clone());
                        Ok::<(), HandlerError>(())
                    }
                })
                .await
                .unwrap();
            let replayed = tokio::time::timeout(DEADLINE, received.recv())
                .await
                .expect("the replayed message is delivered")
                .unwrap();
            assert_eq!(replayed, 1);
            server.messaging.unsubscribe(topic).await.unwrap();
        })
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_inbox_page_marks_a_notification_read_and_shows_new_ones_live() {
    support::run(|server| {
        Box::pin(async move {
            let first = server
                .record("ada", NotificationKind::System, "Welcome")
                .await;
            let second = server
                .record("ada", NotificationKind::System, "Wallet recharged")
                .await;
            let others = server
                .record("bob", NotificationKind::System, "Bob's")
                .await;
            let markup = "<img src=x onerror=\"document.title='owned'\">";
            let shown_as_text = server.record("ada", NotificationKind::System, markup).await;

            let browser = Browser::start().await;
            browser.goto(&server.url("/dashboard#/inbox")).await;
            let field = browser.find("#user-token").await;
            browser.type_into(&field, &server.token("ada")).await;
            let button = browser.find("#user-login").await;
            browser.click(&button).await;
            browser.wait_for_text("#unread-count", "3").await;
            browser
                .find(&format!("#inbox tr[data-id=\"{}\"]", second.id))
                .await;
            // Markup in a title is shown as text, never made into elements.
            browser
                .wait_for_text(
                    &format!("#inbox tr[data-id=\"{}\"] td.title", shown_as_text.id),
                    markup,
                )
                .await;
            assert!(browser.find_now("#inbox img").await.is_none());
            assert_ne!(browser.execute("return document.title").await, "owned");
            // Only ada's: bob's notification is not on her page.
            assert!(
                browser
                    .find_now(&format!("#inbox tr[data-id=\"{}\"]", others.id))
                    .await
                    .is_none()
            );

            let mark = browser
                .find(&format!(
                    "#inbox tr[data-id=\"{}\"] button.mark-read",
                    first.id
                ))
                .await;
            browser.click(&mark).await;
            browser.wait_for_text("#unread-count", "2").await;
            browser
                .find(&format!("#inbox tr.read[data-id=\"{}\"]", first.id))
                .await;
            // In PostgreSQL: the one clicked is read, the others are not.
            let mut ada = server.rows_of("ada").await;
            ada.sort();
            let mut expected = vec![
                (first.id, true),
                (second.id, false),
                (shown_as_text.id, false),
            ];
            expected.sort();
            assert_eq!(ada, expected);
            assert_eq!(server.rows_of("bob").await, vec![(others.id, false)]);

            // A notification recorded now appears without a reload (the
            // page follows the user's event stream).
            let third = server
                .record("ada", NotificationKind::System, "Your digest")
                .await;
            browser
                .find(&format!("#inbox tr.unread[data-id=\"{}\"]", third.id))
                .await;
            browser.wait_for_text("#unread-count", "3").await;
            browser.screenshot("dashboard-inbox").await;
            browser.close().await;
        })
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_overview_pages_a_thousand_topics_fifty_at_a_time() {
    support::run(|server| {
        Box::pin(async move {
            let names: Vec<String> = (0..1000).map(|i| format!("bulk.t{i:04}")).collect();
            for chunk in names.chunks(100) {
                futures::future::try_join_all(
                    chunk.iter().map(|name| server.messaging.create_topic(name)),
                )
                .await
                .unwrap();
            }
            let browser = Browser::start().await;
            browser.goto(&server.url("/dashboard")).await;
            sign_in_as_admin(&browser).await;
            browser
                .wait_for_text("#topics-page", "1000 topics · page 1 of 20")
                .await;
            browser
                .find("#topics tr[data-topic=\"bulk.t0049\"] .length")
                .await;
            let rows = browser
                .execute("return document.querySelectorAll('#topics tbody tr').length")
                .await;
            assert_eq!(rows, 50, "one page of topics, not all of them");
            // The filter narrows the list; the next page shows the next fifty.
            let filter = browser.find("#topic-filter").await;
            browser.type_into(&filter, "bulk.t09").await;
            browser
                .wait_for_text("#topics-page", "100 topics · page 1 of 2")
                .await;
            let next = browser.find("#topics-next").await;
            browser.click(&next).await;
            browser
                .find("#topics tr[data-topic=\"bulk.t0999\"] .length")
                .await;
            browser
                .wait_for_absent("#topics tr[data-topic=\"bulk.t0900\"]")
                .await;
            browser.screenshot("dashboard-thousand-topics").await;
            browser.close().await;
        })
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_is_served_whole_from_the_binary_with_a_closed_content_policy() {
    support::run(|server| {
        Box::pin(async move {
            for (path, kind) in [
                ("/dashboard", "text/html"),
                ("/dashboard/app.js", "text/javascript"),
                ("/dashboard/app.css", "text/css"),
            ] {
                let response = server.http.get(server.url(path)).send().await.unwrap();
                assert_eq!(response.status(), 200, "{path}");
                let headers = response.headers().clone();
                assert!(
                    headers["content-type"].to_str().unwrap().starts_with(kind),
                    "{path}"
                );
                let policy = headers["content-security-policy"].to_str().unwrap();
                assert!(
                    policy.contains("default-src 'none'") && policy.contains("connect-src 'self'")
                );
                assert_eq!(headers["x-content-type-options"], "nosniff");
                let body = response.text().await.unwrap();
                // Nothing from elsewhere: no CDN, no font service.
                for external in ["http://", "https://", "//cdn", "@import"] {
                    assert!(!body.contains(external), "{path} names {external}");
                }
            }
            // The pages hold no data: without a token the API still refuses.
            let (status, _) = server.get("/v1/admin/topics", "").await;
            assert_eq!(status, 401);
        })
    })
    .await;
}
