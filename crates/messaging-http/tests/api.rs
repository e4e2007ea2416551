//! The API against a real server on a free loopback port, over the Redis and
//! PostgreSQL of the environment (a key prefix and a schema per test).
//!
//! ```text
//! REDIS_URL=redis://127.0.0.1:6379 DATABASE_URL=postgres://postgres@127.0.0.1:5432/test \
//!   cargo test -p messaging-http --test api
//! ```

mod support;

use messaging_model::NotificationKind;
use serde_json::{Value, json};
use support::{ADMIN_TOKEN, Server, SseReader};

fn titles(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["title"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_pages_filters_and_marks_their_own_notifications() {
    support::run(|server| {
        Box::pin(async move {
            server.record("ada", NotificationKind::System, "one").await;
            let two = server.record("ada", NotificationKind::Email, "two").await;
            let three = server
                .record("ada", NotificationKind::System, "three")
                .await;
            server
                .record("bob", NotificationKind::System, "not ada's")
                .await;
            let ada = server.token("ada");

            let (status, first) = server.get("/v1/me/notifications?limit=2", &ada).await;
            assert_eq!(status, 200, "{first}");
            assert_eq!(titles(&first), ["three", "two"]);
            let cursor = first["next_cursor"]
                .as_str()
                .expect("a next page")
                .to_owned();
            let (_, second) = server
                .get(
                    &format!("/v1/me/notifications?limit=2&cursor={cursor}"),
                    &ada,
                )
                .await;
            assert_eq!(titles(&second), ["one"]);
            assert!(second.get("next_cursor").is_none(), "{second}");

            let (_, emails) = server.get("/v1/me/notifications?kind=email", &ada).await;
            assert_eq!(titles(&emails), ["two"]);
            let since = three
                .created_at
                .to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
            let (status, recent) = server
                .get(
                    &format!("/v1/me/notifications?since={}", since.replace('+', "%2B")),
                    &ada,
                )
                .await;
            assert_eq!(status, 200, "{recent}");
            assert_eq!(titles(&recent), ["three"]);

            assert_eq!(
                server.get("/v1/me/unread-count", &ada).await.1,
                json!({"unread": 3})
            );
            let (status, _) = server
                .post(&format!("/v1/me/notifications/{}/read", two.id), &ada)
                .await;
            assert_eq!(status, 204);
            let (_, unread) = server.get("/v1/me/notifications?unread=true", &ada).await;
            assert_eq!(titles(&unread), ["three", "one"]);
            let (_, shown) = server
                .get(&format!("/v1/me/notifications/{}", two.id), &ada)
                .await;
            assert_eq!(shown["is_read"], true);
            assert!(shown["read_at"].is_string(), "{shown}");

            let (status, _) = server
                .post(&format!("/v1/me/notifications/{}/unread", two.id), &ada)
                .await;
            assert_eq!(status, 204);
            assert_eq!(server.get("/v1/me/unread-count", &ada).await.1["unread"], 3);
            let (status, changed) = server.post("/v1/me/notifications/read-all", &ada).await;
            assert_eq!((status, changed), (200, json!({"changed": 3})));
            assert_eq!(server.get("/v1/me/unread-count", &ada).await.1["unread"], 0);

            let (status, _) = server
                .delete(&format!("/v1/me/notifications/{}", three.id), &ada)
                .await;
            assert_eq!(status, 204);
            let (status, _) = server
                .get(&format!("/v1/me/notifications/{}", three.id), &ada)
                .await;
            assert_eq!(status, 404);
            assert_eq!(server.rows_of("ada").await.len(), 2);
            assert_eq!(
                server.rows_of("bob").await,
                vec![(server.rows_of("bob").await[0].0, false)]
            );
        })
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_a_cannot_read_or_change_user_b_notifications_on_any_endpoint() {
    support::run(|server| {
        Box::pin(async move {
            let bobs = server
                .record("bob", NotificationKind::System, "bob's secret")
                .await;
            let read_one = server
                .record("bob", NotificationKind::Email, "bob's read one")
                .await;
            server.store_mark_read("bob", read_one.id).await;
            server
                .record("ada", NotificationKind::System, "ada's")
                .await;
            let before = server.rows_of("bob").await;
            let ada = server.token("ada");

            for (method, path) in [
                (
                    reqwest::Method::GET,
                    format!("/v1/me/notifications/{}", bobs.id),
                ),
                (
                    reqwest::Method::POST,
                    format!("/v1/me/notifications/{}/read", bobs.id),
                ),
                (
                    reqwest::Method::POST,
                    format!("/v1/me/notifications/{}/unread", read_one.id),
                ),
                (
                    reqwest::Method::DELETE,
                    format!("/v1/me/notifications/{}", bobs.id),
                ),
                (
                    reqwest::Method::DELETE,
                    format!("/v1/me/notifications/{}", read_one.id),
                ),
            ] {
                let (status, problem) =
                    support::send(server.request(method.clone(), &path, &ada)).await;
                assert_eq!(status, 404, "{method} {path}: {problem}");
                assert!(
                    !problem.to_string().contains("bob"),
                    "nothing of bob's is told: {problem}"
                );
            }
            // Whatever the query or body says, the user is the token's `sub`.
            let (_, page) = server
                .get("/v1/me/notifications?user_id=bob&user=bob&sub=bob", &ada)
                .await;
            assert_eq!(titles(&page), ["ada's"]);
            let (_, count) = server.get("/v1/me/unread-count?user_id=bob", &ada).await;
            assert_eq!(count["unread"], 1);
            let (status, changed) = support::send(
                server
                    .request(
                        reqwest::Method::POST,
                        "/v1/me/notifications/read-all?user_id=bob",
                        &ada,
                    )
                    .json(&json!({"user_id": "bob", "sub": "bob"})),
            )
            .await;
            assert_eq!((status, changed), (200, json!({"changed": 1})));
            // An event stream for ada hears nothing of bob's: bob's notification
            // is recorded first, ada's second, and ada's is the first she gets.
            let mut stream = SseReader::open(server, &ada).await;
            assert_eq!(stream.next().await.data, json!({"unread": 0}));
            let bobs_new = server
                .record("bob", NotificationKind::System, "bob's new")
                .await;
            let adas = server
                .record("ada", NotificationKind::System, "ada's new")
                .await;
            let (_, pushed) = stream.until_notification(adas.id).await;
            for event in &pushed {
                assert_ne!(event.data["id"], bobs_new.id.to_string(), "{event:?}");
                assert_eq!(event.data["title"], "ada's", "only ada's own: {event:?}");
            }

            assert_eq!(server.rows_of("bob").await.len(), before.len() + 1);
            assert_eq!(
                server.rows_of("bob").await[..before.len()],
                before[..],
                "bob's rows are unchanged"
            );
        })
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_expired_and_forged_tokens_are_401_problems() {
    support::run(|server| {
        Box::pin(async move {
            use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
            let now = jsonwebtoken::get_current_timestamp();
            let sign = |claims: Value, key: &[u8]| {
                encode(
                    &Header::new(Algorithm::HS256),
                    &claims,
                    &EncodingKey::from_secret(key).unwrap(),
                )
                .unwrap()
            };
            let key = support::USER_KEY.as_bytes();
            let expired = sign(json!({"sub": "ada", "exp": now - 3600}), key);
            let forged = sign(
                json!({"sub": "ada", "exp": now + 3600}),
                b"another-key-0123456789abcdef0123456789",
            );
            let no_exp = sign(json!({"sub": "ada"}), key);
            let empty_sub = sign(json!({"sub": "", "exp": now + 3600}), key);
            let hs512 = encode(
                &Header::new(Algorithm::HS512),
                &json!({"sub": "ada", "exp": now + 3600}),
                &EncodingKey::from_secret(key).unwrap(),
            )
            .unwrap();
            // alg "none": header and claims with an empty signature.
            let unsigned =
                "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJzdWIiOiJhZGEiLCJleHAiOjQxMDI0NDQ4MDB9.";
            for path in [
                "/v1/me/notifications",
                "/v1/me/unread-count",
                "/v1/me/events",
            ] {
                let response = server.http.get(server.url(path)).send().await.unwrap();
                assert_eq!(response.status(), 401, "{path} without a token");
                assert_eq!(response.headers()["www-authenticate"], "Bearer");
                for (name, token) in [
                    ("expired", expired.as_str()),
                    ("forged", forged.as_str()),
                    ("without exp", no_exp.as_str()),
                    ("empty sub", empty_sub.as_str()),
                    ("HS512", hs512.as_str()),
                    ("alg none", unsigned),
                    ("garbage", "not.a.token"),
                    ("the admin token", ADMIN_TOKEN),
                ] {
                    let (status, problem) = server.get(path, token).await;
                    assert_eq!(status, 401, "{path} with a token {name}: {problem}");
                }
            }
            let (_, problem) = server.get("/v1/me/notifications", &expired).await;
            assert_eq!(problem["detail"], "the token has expired");
            let basic = support::send(
                server
                    .http
                    .get(server.url("/v1/me/notifications"))
                    .header("authorization", "Basic YWRhOnB3"),
            )
            .await;
            assert_eq!(basic.0, 401);
        })
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_api_refuses_user_tokens_and_wrong_admin_tokens() {
    support::run(|server| {
        Box::pin(async move {
            server
                .messaging
                .create_topic("orders.placed")
                .await
                .unwrap();
            let user = server.token("ada");
            let wrong = "test-admin-token-0123456789abcdef0124";
            for (method, path) in [
                (reqwest::Method::GET, "/v1/admin/topics"),
                (reqwest::Method::POST, "/v1/admin/topics"),
                (reqwest::Method::DELETE, "/v1/admin/topics/orders.placed"),
                (reqwest::Method::GET, "/v1/admin/stats"),
                (reqwest::Method::GET, "/v1/admin/topics/orders.placed/stats"),
                (
                    reqwest::Method::GET,
                    "/v1/admin/topics/orders.placed/dead-letters",
                ),
                (
                    reqwest::Method::DELETE,
                    "/v1/admin/topics/orders.placed/dead-letters",
                ),
                (
                    reqwest::Method::POST,
                    "/v1/admin/topics/orders.placed/dead-letters/replay",
                ),
                (
                    reqwest::Method::GET,
                    "/v1/admin/topics/orders.placed/dead-letters/1-0",
                ),
                (
                    reqwest::Method::POST,
                    "/v1/admin/topics/orders.placed/dead-letters/1-0/replay",
                ),
                (reqwest::Method::GET, "/v1/admin/topics/orders.placed/pause"),
                (
                    reqwest::Method::POST,
                    "/v1/admin/topics/orders.placed/pause",
                ),
                (
                    reqwest::Method::POST,
                    "/v1/admin/topics/orders.placed/resume",
                ),
                (reqwest::Method::GET, "/v1/admin/health"),
                (reqwest::Method::GET, "/v1/admin/schedules"),
                (reqwest::Method::POST, "/v1/admin/schedules/nightly/pause"),
                (reqwest::Method::POST, "/v1/admin/schedules/nightly/resume"),
                (reqwest::Method::DELETE, "/v1/admin/schedules/nightly"),
            ] {
                let (status, problem) = support::send(
                    server
                        .request(method.clone(), path, &user)
                        .json(&json!({"name": "x.y"})),
                )
                .await;
                assert_eq!(status, 403, "{method} {path} with a user token: {problem}");
                let (status, _) = support::send(server.request(method.clone(), path, wrong)).await;
                assert_eq!(status, 401, "{method} {path} with a wrong admin token");
                let (status, _) =
                    support::send(server.http.request(method.clone(), server.url(path))).await;
                assert_eq!(status, 401, "{method} {path} without a token");
            }
            assert_eq!(
                server.messaging.list_topics().await.unwrap().len(),
                1,
                "nothing was created or deleted"
            );
            assert!(
                !server
                    .messaging
                    .pause_state("orders.placed")
                    .await
                    .unwrap()
                    .all
            );
        })
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_manages_topics_pauses_and_sees_stats_and_health() {
    support::run(|server| {
        Box::pin(async move {
            let admin = ADMIN_TOKEN;
            let created = support::send(
                server
                    .request(reqwest::Method::POST, "/v1/admin/topics", admin)
                    .json(&json!({"name": "orders.placed"})),
            )
            .await;
            assert_eq!(created.0, 201, "{}", created.1);
            let partitioned = support::send(
                server
                    .request(reqwest::Method::POST, "/v1/admin/topics", admin)
                    .json(&json!({"name": "orders.split", "partitions": 3})),
            )
            .await;
            assert_eq!(partitioned.0, 201, "{}", partitioned.1);
            let conflict = support::send(
                server
                    .request(reqwest::Method::POST, "/v1/admin/topics", admin)
                    .json(&json!({"name": "orders.split", "partitions": 4})),
            )
            .await;
            assert_eq!(conflict.0, 409, "{}", conflict.1);
            let invalid = support::send(
                server
                    .request(reqwest::Method::POST, "/v1/admin/topics", admin)
                    .json(&json!({"name": "no spaces allowed"})),
            )
            .await;
            assert_eq!(invalid.0, 400, "{}", invalid.1);
            let malformed = support::send(
                server
                    .request(reqwest::Method::POST, "/v1/admin/topics", admin)
                    .header("content-type", "application/json")
                    .body("{not json"),
            )
            .await;
            assert_eq!(malformed.0, 400, "{}", malformed.1);

            let (status, topics) = server.get("/v1/admin/topics", admin).await;
            assert_eq!(status, 200);
            assert!(
                topics["topics"]
                    .as_array()
                    .unwrap()
                    .contains(&json!("orders.placed")),
                "{topics}"
            );

            server
                .messaging
                .publish("orders.placed", json!({"n": 1}))
                .await
                .unwrap();
            let (status, stats) = server
                .get("/v1/admin/topics/orders.placed/stats", admin)
                .await;
            assert_eq!(status, 200, "{stats}");
            assert_eq!(stats["length"], 1);
            assert_eq!(stats["paused"], false);
            let (status, _) = server.get("/v1/admin/topics/no.such/stats", admin).await;
            assert_eq!(status, 404);

            let (status, changed) = server
                .post("/v1/admin/topics/orders.placed/pause?group=mailer", admin)
                .await;
            assert_eq!((status, changed), (200, json!({"changed": true})));
            let (_, again) = server
                .post("/v1/admin/topics/orders.placed/pause?group=mailer", admin)
                .await;
            assert_eq!(again, json!({"changed": false}));
            let (_, paused) = server
                .get("/v1/admin/topics/orders.placed/pause", admin)
                .await;
            assert_eq!(paused, json!({"all": false, "groups": ["mailer"]}));
            assert!(
                server
                    .messaging
                    .pause_state("orders.placed")
                    .await
                    .unwrap()
                    .is_paused("mailer")
            );
            let (_, resumed) = server
                .post("/v1/admin/topics/orders.placed/resume?group=mailer", admin)
                .await;
            assert_eq!(resumed, json!({"changed": true}));
            assert!(
                server
                    .messaging
                    .pause_state("orders.placed")
                    .await
                    .unwrap()
                    .is_empty()
            );

            let (status, all) = server.get("/v1/admin/stats", admin).await;
            assert_eq!(status, 200);
            assert!(
                all.as_array()
                    .unwrap()
                    .iter()
                    .any(|s| s["topic"] == "orders.placed"),
                "{all}"
            );

            let (status, health) = server.get("/v1/admin/health", admin).await;
            assert_eq!(status, 200, "{health}");
            assert_eq!(health["store"], "ok");
            assert!(
                !health.to_string().contains("redis://"),
                "no URLs in responses: {health}"
            );

            let (status, _) = server.delete("/v1/admin/topics/orders.placed", admin).await;
            assert_eq!(status, 204);
            let (status, _) = server.delete("/v1/admin/topics/orders.placed", admin).await;
            assert_eq!(status, 404);
        })
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_lists_filters_shows_replays_and_purges_dead_letters() {
    support::run(|server| {
        Box::pin(async move {
            use messaging_core::HandlerError;
            use messaging_model::Message;
            let admin = ADMIN_TOKEN;
            let topic = "invoices.send";
            server.messaging.create_topic(topic).await.unwrap();
            // A consumer that gives up at once: "smtp down" for odd numbers, "bad address" else.
            server
                .messaging
                .subscribe(topic, |message: Message| async move {
                    let n = message.payload["n"].as_u64().unwrap_or(0);
                    Err::<(), _>(HandlerError::permanent(if n % 2 == 1 {
                        "smtp down"
                    } else {
                        "bad address"
                    }))
                })
                .await
                .unwrap();
            for n in 1..=5 {
                server
                    .messaging
                    .publish(topic, json!({"n": n}))
                    .await
                    .unwrap();
            }
            let path = format!("/v1/admin/topics/{topic}/dead-letters");
            messaging_test_support::eventually(
                "five dead letters",
                support::DEADLINE,
                std::time::Duration::from_millis(50),
                || async {
                    let (_, stats) = server
                        .get(&format!("/v1/admin/topics/{topic}/stats"), admin)
                        .await;
                    (stats["dead_lettered"] == 5).then_some(())
                },
            )
            .await;
            server.messaging.unsubscribe(topic).await.unwrap();

            let (status, page) = server.get(&format!("{path}?limit=2"), admin).await;
            assert_eq!(status, 200, "{page}");
            assert_eq!(page["items"].as_array().unwrap().len(), 2);
            let after = page["next_after"].as_str().expect("a next page").to_owned();
            let (_, rest) = server
                .get(&format!("{path}?limit=10&after={after}"), admin)
                .await;
            assert_eq!(rest["items"].as_array().unwrap().len(), 3);
            assert!(rest.get("next_after").is_none());

            let (_, smtp) = server.get(&format!("{path}?error=SMTP"), admin).await;
            let smtp = smtp["items"].as_array().unwrap().clone();
            assert_eq!(smtp.len(), 3, "case-insensitive error filter");
            assert!(
                smtp.iter()
                    .all(|d| d["error"].as_str().unwrap().contains("smtp down"))
            );
            // A filtered listing pages too, on from the last one it gave.
            let (_, first) = server
                .get(&format!("{path}?error=smtp&limit=2"), admin)
                .await;
            assert_eq!(first["items"].as_array().unwrap().len(), 2);
            let after = first["next_after"]
                .as_str()
                .expect("more may follow")
                .to_owned();
            let (_, second) = server
                .get(&format!("{path}?error=smtp&limit=2&after={after}"), admin)
                .await;
            let second = second.as_object().unwrap().clone();
            assert_eq!(second["items"].as_array().unwrap().len(), 1);
            assert!(!second.contains_key("next_after"), "the last page");
            let paged: Vec<Value> = first["items"]
                .as_array()
                .unwrap()
                .iter()
                .chain(second["items"].as_array().unwrap())
                .map(|d| d["id"].clone())
                .collect();
            let listed: Vec<Value> = smtp.iter().map(|d| d["id"].clone()).collect();
            assert_eq!(paged, listed, "the pages give the listing, each once");
            let (status, _) = server.get(&format!("{path}?after=zzz"), admin).await;
            assert_eq!(status, 400, "an `after` that is no id");
            let (_, none) = server
                .get(&format!("{path}?until=2000-01-01T00:00:00Z"), admin)
                .await;
            assert_eq!(none["items"], json!([]));
            let (_, all_since) = server
                .get(&format!("{path}?since=2000-01-01T00:00:00Z"), admin)
                .await;
            assert_eq!(all_since["items"].as_array().unwrap().len(), 5);
            let (status, _) = server.get(&format!("{path}?since=yesterday"), admin).await;
            assert_eq!(status, 400);
            let (status, _) = server.get(&format!("{path}?limit=0"), admin).await;
            assert_eq!(status, 400);

            let id = smtp[0]["id"].as_str().unwrap().to_owned();
            let (status, shown) = server.get(&format!("{path}/{id}"), admin).await;
            assert_eq!(status, 200, "{shown}");
            assert_eq!(shown["payload"]["n"], smtp[0]["payload"]["n"]);
            assert_eq!(server.get(&format!("{path}/0-1"), admin).await.0, 404);

            let (status, _) = server.post(&format!("{path}/{id}/replay"), admin).await;
            assert_eq!(status, 204);
            assert_eq!(
                server.post(&format!("{path}/{id}/replay"), admin).await.0,
                404,
                "replayed once"
            );
            let (status, replayed) = server
                .post(&format!("{path}/replay?error=smtp&rate=50"), admin)
                .await;
            assert_eq!((status, replayed), (200, json!({"replayed": 2})));
            assert_eq!(
                server.post(&format!("{path}/replay?rate=0"), admin).await.0,
                400
            );
            let (_, left) = server.get(&path, admin).await;
            assert_eq!(left["items"].as_array().unwrap().len(), 2);
            assert!(
                left["items"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .all(|d| d["error"].as_str().unwrap().contains("bad address"))
            );

            let (status, purged) = server.delete(&path, admin).await;
            assert_eq!((status, purged), (200, json!({"purged": 2})));
            let (_, stats) = server
                .get(&format!("/v1/admin/topics/{topic}/stats"), admin)
                .await;
            assert_eq!(stats["dead_lettered"], 0);
            let (_, replayed) = server.post(&format!("{path}/replay"), admin).await;
            assert_eq!(replayed, json!({"replayed": 0}));
        })
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_a_4xx_problem_never_a_5xx() {
    support::run(|server| {
        Box::pin(async move {
            let ada = server.token("ada");
            for path in [
                "/v1/me/notifications?limit=0",
                "/v1/me/notifications?limit=101",
                "/v1/me/notifications?limit=-1",
                "/v1/me/notifications?cursor=garbage",
                "/v1/me/notifications?cursor=99999999999999999999.x",
                "/v1/me/notifications?kind=fax",
                "/v1/me/notifications?since=yesterday",
                "/v1/me/notifications?unread=maybe",
            ] {
                let (status, problem) = server.get(path, &ada).await;
                assert_eq!(status, 400, "{path}: {problem}");
            }
            for path in [
                "/v1/me/notifications/not-a-uuid",
                "/nowhere",
                "/v1/me/notifications/x/y/z",
            ] {
                let (status, _) = server.get(path, &ada).await;
                assert_eq!(status, 404, "{path}");
            }
            let (status, _) = server.post("/v1/me/unread-count", &ada).await;
            assert_eq!(status, 405);
            let (status, _) = server
                .get("/v1/admin/topics/bad%20topic/stats", ADMIN_TOKEN)
                .await;
            assert_eq!(status, 400);
            let (status, _) = server.get("/livez", "").await;
            assert_eq!(status, 200);
        })
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_body_is_refused_with_413() {
    let server = Server::start_with(|config| config.with_body_limit(1024)).await;
    support::run_on(server, |server| {
        Box::pin(async move {
            let big = json!({"name": "a.b", "padding": "x".repeat(4096)});
            let (status, problem) = support::send(
                server
                    .request(reqwest::Method::POST, "/v1/admin/topics", ADMIN_TOKEN)
                    .json(&big),
            )
            .await;
            assert_eq!(status, 413, "{problem}");
            assert!(server.messaging.list_topics().await.unwrap().is_empty());
        })
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_is_closed_by_default() {
    support::run(|server| {
        Box::pin(async move {
            let preflight = server
                .http
                .request(reqwest::Method::OPTIONS, server.url("/v1/me/notifications"))
                .header("origin", "https://evil.example")
                .header("access-control-request-method", "GET")
                .header("access-control-request-headers", "authorization")
                .send()
                .await
                .unwrap();
            assert!(
                preflight
                    .headers()
                    .get("access-control-allow-origin")
                    .is_none(),
                "{:?}",
                preflight.headers()
            );
            let simple = server
                .request(
                    reqwest::Method::GET,
                    "/v1/me/unread-count",
                    &server.token("ada"),
                )
                .header("origin", "https://evil.example")
                .send()
                .await
                .unwrap();
            assert!(
                simple
                    .headers()
                    .get("access-control-allow-origin")
                    .is_none()
            );
        })
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_answers_only_the_configured_origins() {
    let server = Server::start_with(|config| {
        config
            .with_allowed_origins(["https://app.example"])
            .unwrap()
    })
    .await;
    support::run_on(server, |server| {
        Box::pin(async move {
            let preflight = |origin: &'static str| {
                server
                    .http
                    .request(reqwest::Method::OPTIONS, server.url("/v1/me/notifications"))
                    .header("origin", origin)
                    .header("access-control-request-method", "GET")
                    .header("access-control-request-headers", "authorization")
                    .send()
            };
            let allowed = preflight("https://app.example").await.unwrap();
            assert_eq!(
                allowed.headers()["access-control-allow-origin"],
                "https://app.example"
            );
            let other = preflight("https://evil.example").await.unwrap();
            assert!(other.headers().get("access-control-allow-origin").is_none());
        })
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_description_lists_every_route() {
    support::run(|server| {
        Box::pin(async move {
            let (status, doc) = server.get("/openapi.json", "").await;
            assert_eq!(status, 200);
            assert!(doc["openapi"].as_str().unwrap().starts_with("3."), "{doc}");
            let paths = doc["paths"].as_object().unwrap();
            for path in [
                "/v1/me/notifications",
                "/v1/me/notifications/{id}",
                "/v1/me/notifications/{id}/read",
                "/v1/me/notifications/{id}/unread",
                "/v1/me/notifications/read-all",
                "/v1/me/unread-count",
                "/v1/me/events",
                "/v1/admin/topics",
                "/v1/admin/topics/{topic}",
                "/v1/admin/stats",
                "/v1/admin/topics/{topic}/stats",
                "/v1/admin/topics/{topic}/dead-letters",
                "/v1/admin/topics/{topic}/dead-letters/{id}",
                "/v1/admin/topics/{topic}/dead-letters/{id}/replay",
                "/v1/admin/topics/{topic}/dead-letters/replay",
                "/v1/admin/topics/{topic}/pause",
                "/v1/admin/topics/{topic}/resume",
                "/v1/admin/health",
                "/v1/admin/schedules",
                "/v1/admin/schedules/{name}",
                "/v1/admin/schedules/{name}/pause",
                "/v1/admin/schedules/{name}/resume",
                "/v1/webhooks/unsubscribe",
                "/v1/webhooks/{provider}",
            ] {
                assert!(paths.contains_key(path), "{path} is described");
            }
            assert!(doc["components"]["securitySchemes"]["user_token"].is_object());
            assert!(doc["components"]["schemas"]["Problem"].is_object());
        })
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_event_stream_pushes_notifications_recorded_by_another_process() {
    support::run(|server| {
        Box::pin(async move {
            server
                .record("ada", NotificationKind::System, "before")
                .await;
            let mut stream = SseReader::open(server, &server.token("ada")).await;
            let first = stream.next().await;
            assert_eq!(
                (first.event.as_str(), first.data.clone()),
                ("unread", json!({"unread": 1}))
            );

            // Another process: a store of its own over the same schema.
            let elsewhere = notification_store_postgres::PostgresStore::connect(
                notification_store_postgres::PostgresStoreConfig::new(support::database_url())
                    .with_schema(&server.schema)
                    .with_max_connections(1),
            )
            .await
            .unwrap();
            let recorded = messaging_model::Notification::new(
                "ada",
                NotificationKind::System,
                "Hello",
                "from afar",
            );
            notification_store::NotificationStore::record(&elsewhere, &recorded)
                .await
                .unwrap();
            elsewhere.close().await;

            let (event, _) = stream.until_notification(recorded.id).await;
            assert_eq!(event.id.as_deref(), Some(recorded.id.to_string().as_str()));
            assert_eq!(event.data["title"], "Hello");
            assert_eq!(event.data["is_read"], false);
            let count = stream.next().await;
            assert_eq!(
                (count.event.as_str(), count.data),
                ("unread", json!({"unread": 2}))
            );

            // Two streams of one user both hear; closing one keeps the other.
            let mut second = SseReader::open(server, &server.token("ada")).await;
            assert_eq!(second.next().await.data, json!({"unread": 2}));
            drop(stream);
            let again = server.record("ada", NotificationKind::Push, "again").await;
            let (event, _) = second.until_notification(again.id).await;
            assert_eq!(event.data["kind"], "push");
            // The event carries what the API shows for the notification.
            let (status, shown) = server
                .get(
                    &format!("/v1/me/notifications/{}", again.id),
                    &server.token("ada"),
                )
                .await;
            assert_eq!(status, 200);
            assert_eq!(event.data, shown);
            assert_eq!(second.next().await.data, json!({"unread": 3}));

            // A row too big for its announcement (over 7,900 bytes as JSON)
            // is read back and pushed all the same, with the count.
            let mut big = messaging_model::Notification::new(
                "ada",
                NotificationKind::Email,
                "Big",
                "é".repeat(5_000),
            );
            big.metadata = json!({"lines": (0..200).collect::<Vec<_>>()});
            notification_store::NotificationStore::record(&server.store, &big)
                .await
                .unwrap();
            let (event, _) = second.until_notification(big.id).await;
            let content = event.data["content"].as_str().unwrap_or_default();
            assert_eq!(content, "é".repeat(5_000));
            assert_eq!(event.data["metadata"]["lines"][199], 199);
            assert_eq!(second.next().await.data, json!({"unread": 4}));
        })
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_lists_pauses_resumes_and_removes_schedules() {
    support::run(|server| {
        Box::pin(async move {
            use messaging_core::schedule::Schedule;
            let admin = ADMIN_TOKEN;
            let schedule = Schedule::interval(
                "nightly",
                "reports.build",
                std::time::Duration::from_secs(3600),
                json!({"kind": "daily"}),
            )
            .unwrap();
            server.schedules.save_schedule(&schedule).await.unwrap();

            let (status, listed) = server.get("/v1/admin/schedules", admin).await;
            assert_eq!(status, 200, "{listed}");
            assert_eq!(listed[0]["schedule"]["name"], "nightly");
            assert!(listed[0]["next_tick"].is_string(), "{listed}");

            let (status, changed) = server
                .post("/v1/admin/schedules/nightly/pause", admin)
                .await;
            assert_eq!((status, changed), (200, json!({"changed": true})));
            let (_, listed) = server.get("/v1/admin/schedules", admin).await;
            assert!(listed[0]["next_tick"].is_null(), "paused: {listed}");
            assert!(
                server.schedules.schedules().await.unwrap()[0]
                    .schedule
                    .paused
            );
            let (_, again) = server
                .post("/v1/admin/schedules/nightly/pause", admin)
                .await;
            assert_eq!(again, json!({"changed": false}));
            let (_, resumed) = server
                .post("/v1/admin/schedules/nightly/resume", admin)
                .await;
            assert_eq!(resumed, json!({"changed": true}));
            assert_eq!(
                server.post("/v1/admin/schedules/nope/pause", admin).await.0,
                404
            );

            assert_eq!(
                server.delete("/v1/admin/schedules/nightly", admin).await.0,
                204
            );
            assert_eq!(
                server.delete("/v1/admin/schedules/nightly", admin).await.0,
                404
            );
            assert!(server.schedules.schedules().await.unwrap().is_empty());
        })
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_event_stream_resynchronises_after_the_listener_loses_postgresql() {
    support::run(|server| {
        Box::pin(async move {
            let ada = server.token("ada");
            let mut stream = SseReader::open(server, &ada).await;
            assert_eq!(stream.next().await.data, json!({"unread": 0}));
            let heard = server
                .record("ada", NotificationKind::System, "heard")
                .await;
            stream.until_notification(heard.id).await;
            assert_eq!(stream.next().await.data, json!({"unread": 1}));

            // Only this test's listening connection (its own application_name).
            let killed: Vec<bool> = sqlx::query_scalar(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                 WHERE application_name = $1 AND query LIKE 'LISTEN %'",
            )
            .bind(&server.application_name)
            .fetch_all(server.store.pool())
            .await
            .unwrap();
            assert_eq!(killed, [true], "one listener connection");

            // What was recorded while it was away is not pushed: the stream is
            // told to read the count afresh instead.
            let resync = stream.next().await;
            assert_eq!(
                (resync.event.as_str(), resync.data),
                ("unread", json!({"unread": 1}))
            );
            // And it listens again.
            let after = server
                .record("ada", NotificationKind::System, "after")
                .await;
            let (event, _) = stream.until_notification(after.id).await;
            assert_eq!(event.data["title"], "after");
        })
    })
    .await;
}
