//! The webhook endpoints against a real server over Redis and PostgreSQL:
//! one-click unsubscribe and a provider's delivery callback.

mod support;

use std::sync::Arc;

use messaging_http::{DeliveryWebhook, Webhooks};
use messaging_model::NotificationKind;
use notification::unsubscribe::{UnsubscribeKey, UnsubscribeToken};
use notification_delivery_events::apply::DeliveryEventApplier;
use notification_delivery_events::postmark::PostmarkVerifier;
use notification_delivery_events::twilio::TwilioVerifier;
use notification_store::{PreferenceStore, SuppressionStore};
use serde_json::json;
use support::Server;

const TWILIO_TOKEN: &str = "twilio-auth-token";
const TWILIO_URL: &str = "https://api.example.com/v1/webhooks/twilio";
const UNSUBSCRIBE_KEY: &[u8] = b"unsubscribe-key-for-tests-0123456789abcdef";

async fn server_with_webhooks() -> Server {
    Server::start_configured(
        |config| config,
        |store| {
            let store = Arc::new(store.clone());
            Webhooks::default()
                .with_unsubscribe(
                    UnsubscribeKey::new(UNSUBSCRIBE_KEY.to_vec()).unwrap(),
                    store.clone(),
                )
                .with_delivery(
                    DeliveryWebhook::Postmark(PostmarkVerifier::new("hooks", "s3cret")),
                    DeliveryEventApplier::new(store.clone(), store.clone()),
                )
                .with_delivery(
                    DeliveryWebhook::Twilio {
                        verifier: TwilioVerifier::new(TWILIO_TOKEN),
                        public_url: TWILIO_URL.to_owned(),
                    },
                    DeliveryEventApplier::new(store.clone(), store),
                )
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_one_click_unsubscribe_turns_the_category_off_and_bad_tokens_change_nothing() {
    support::run_on(server_with_webhooks().await, |server| {
        Box::pin(async move {
            let subscriber = server.store.subscriber_id("ada").await.unwrap();
            let key = UnsubscribeKey::new(UNSUBSCRIBE_KEY.to_vec()).unwrap();
            let expires = chrono::Utc::now() + chrono::Duration::days(1);
            let token =
                UnsubscribeToken::new(subscriber, "marketing", NotificationKind::Email, expires)
                    .sign(&key);
            let forged =
                UnsubscribeToken::new(subscriber, "marketing", NotificationKind::Email, expires)
                    .sign(
                        &UnsubscribeKey::new(b"another-unsubscribe-key-0123456789abcdef".to_vec())
                            .unwrap(),
                    );
            let expired = UnsubscribeToken::new(
                subscriber,
                "marketing",
                NotificationKind::Email,
                chrono::Utc::now() - chrono::Duration::days(1),
            )
            .sign(&key);
            let post = |token: String| {
                support::send(
                    server
                        .http
                        .post(server.url(&format!("/v1/webhooks/unsubscribe?token={token}")))
                        .header("content-type", "application/x-www-form-urlencoded")
                        .body("List-Unsubscribe=One-Click"),
                )
            };
            for (name, bad, status) in [
                ("forged", forged, 403),
                ("expired", expired, 403),
                ("malformed", "x".to_owned(), 400),
            ] {
                let (got, problem) = post(bad).await;
                assert_eq!(got, status, "{name}: {problem}");
            }
            let prefs = server.store.get_preferences("ada").await.unwrap();
            assert!(
                prefs
                    .opted_out(Some("marketing"), NotificationKind::Email)
                    .is_none(),
                "nothing changed yet"
            );

            let (status, done) = post(token.clone()).await;
            assert_eq!(
                (status, done.clone()),
                (200, json!({"category": "marketing", "channel": "email"}))
            );
            assert!(!done.to_string().contains("ada"), "the user is not named");
            let prefs = server.store.get_preferences("ada").await.unwrap();
            assert!(
                prefs
                    .opted_out(Some("marketing"), NotificationKind::Email)
                    .is_some()
            );
            assert_eq!(post(token).await.0, 200, "repeating it is harmless");
        })
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_verified_delivery_callback_is_applied_and_a_forged_one_is_401() {
    support::run_on(server_with_webhooks().await, |server| {
        Box::pin(async move {
            let body = r#"{"RecordType":"Bounce","Type":"HardBounce","MessageID":"883953f4",
              "Email":"john@example.com","BouncedAt":"2019-11-05T16:33:54Z","Description":"no such user"}"#;
            let call = |authorization: &'static str| {
                support::send(
                    server
                        .http
                        .post(server.url("/v1/webhooks/postmark"))
                        .header("authorization", authorization)
                        .header("content-type", "application/json")
                        .body(body),
                )
            };
            // "hooks:wrong" and "hooks:s3cret" in base64.
            let (status, _) = call("Basic aG9va3M6d3Jvbmc=").await;
            assert_eq!(status, 401);
            assert!(server
                .store
                .find_suppression(NotificationKind::Email, "john@example.com")
                .await
                .unwrap()
                .is_none());
            let (status, applied) = call("Basic aG9va3M6czNjcmV0").await;
            assert_eq!((status, applied), (200, json!({"applied": 1})));
            assert!(server
                .store
                .find_suppression(NotificationKind::Email, "john@example.com")
                .await
                .unwrap()
                .is_some());
            let (status, _) = support::send(server.http.post(server.url("/v1/webhooks/mailgun")).body("{}")).await;
            assert_eq!(status, 404, "an unconfigured provider");
        })
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_twilio_callback_is_checked_against_the_configured_url_and_its_query() {
    support::run_on(server_with_webhooks().await, |server| {
        Box::pin(async move {
            let params = [
                ("MessageSid", "SM0123456789abcdef0123456789abcdef"),
                ("MessageStatus", "undelivered"),
                ("ErrorCode", "30003"),
                ("To", "+15005550006"),
            ];
            let body = serde_urlencoded::to_string(params).unwrap();
            let post = |signature: String| {
                support::send(
                    server
                        .http
                        .post(server.url("/v1/webhooks/twilio?tenant=a"))
                        .header("content-type", "application/x-www-form-urlencoded")
                        .header("x-twilio-signature", signature)
                        .body(body.clone()),
                )
            };
            let signed_elsewhere = TwilioVerifier::sign(TWILIO_TOKEN, TWILIO_URL, &params);
            assert_eq!(
                post(signed_elsewhere).await.0,
                401,
                "the query is part of what is signed"
            );
            let signed =
                TwilioVerifier::sign(TWILIO_TOKEN, &format!("{TWILIO_URL}?tenant=a"), &params);
            let (status, applied) = post(signed).await;
            assert_eq!((status, applied), (200, json!({"applied": 1})));
        })
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_answer_404_until_configured() {
    support::run(|server| {
        Box::pin(async move {
            let (status, _) = support::send(
                server
                    .http
                    .post(server.url("/v1/webhooks/unsubscribe?token=x")),
            )
            .await;
            assert_eq!(status, 404);
            let (status, _) = support::send(
                server
                    .http
                    .post(server.url("/v1/webhooks/postmark"))
                    .body("{}"),
            )
            .await;
            assert_eq!(status, 404);
        })
    })
    .await;
}
