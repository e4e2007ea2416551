//! SMS and push providers against a real HTTP server on loopback (wiremock):
//! success, 400, 429 with Retry-After, 500, timeout.

use std::sync::Arc;
use std::time::{Duration, Instant};

use messaging_model::{MessageTemplate, NotificationStatus, TemplateKind};
use notification::channel::{
    DeviceToken, FcmConfig, FcmPushProvider, HttpClientConfig, PhoneNumber, ProviderRetryPolicy,
    PushChannel, PushMessage, SmsChannel, SmsMessage, StaticAccessToken, TwilioConfig,
    TwilioSmsProvider, WebhookConfig, WebhookPushProvider, WebhookSmsProvider,
};
use notification::store::InMemoryNotificationStore;
use notification::{NotificationError, NotificationService, PushRequest, SmsRequest, TemplateRef};
use serde_json::json;
use wiremock::matchers::{
    basic_auth, bearer_token, body_json, body_string_contains, header, method, path,
};
use wiremock::{Mock, MockServer, ResponseTemplate};

const TWILIO_PATH: &str = "/2010-04-01/Accounts/AC123/Messages.json";
const FCM_PATH: &str = "/v1/projects/demo-project/messages:send";

fn fast_http() -> HttpClientConfig {
    HttpClientConfig::default()
        .with_timeout(Duration::from_millis(300))
        .with_retry(
            ProviderRetryPolicy::default()
                .with_max_attempts(3)
                .with_initial_backoff(Duration::from_millis(10)),
        )
}

fn twilio(server: &MockServer) -> TwilioSmsProvider {
    TwilioSmsProvider::new(
        TwilioConfig::new(
            "AC123",
            "secret-token",
            PhoneNumber::parse("+15005550006").unwrap(),
        )
        .with_base_url(server.uri())
        .with_http(fast_http()),
    )
    .unwrap()
}

fn fcm(server: &MockServer) -> FcmPushProvider {
    FcmPushProvider::new(
        FcmConfig::new("demo-project", StaticAccessToken::new("ya29.test"))
            .with_base_url(server.uri())
            .with_http(fast_http()),
    )
    .unwrap()
}

fn sms(text: &str) -> SmsMessage {
    SmsMessage::new(PhoneNumber::parse("+14155550100").unwrap(), text)
}

async fn requests(server: &MockServer) -> usize {
    server.received_requests().await.unwrap().len()
}

#[tokio::test]
async fn twilio_sends_a_form_post_with_basic_auth() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(TWILIO_PATH))
        .and(basic_auth("AC123", "secret-token"))
        .and(header("content-type", "application/x-www-form-urlencoded"))
        .and(body_string_contains("To=%2B14155550100"))
        .and(body_string_contains("From=%2B15005550006"))
        .and(body_string_contains("Body=Your+code+is+1234"))
        .respond_with(
            ResponseTemplate::new(201).set_body_json(json!({"sid": "SM42", "status": "queued"})),
        )
        .expect(1)
        .mount(&server)
        .await;
    let receipt = twilio(&server)
        .send_sms(&sms("Your code is 1234"))
        .await
        .unwrap();
    assert_eq!(receipt.provider, "twilio");
    assert_eq!(receipt.provider_message_id.as_deref(), Some("SM42"));
}

#[tokio::test]
async fn a_400_fails_at_once() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(400)
                .set_body_json(json!({"code": 21211, "message": "Invalid 'To' Phone Number"})),
        )
        .mount(&server)
        .await;
    let error = twilio(&server).send_sms(&sms("hello")).await.unwrap_err();
    assert!(error.is_permanent(), "{error}");
    assert!(matches!(
        error,
        NotificationError::HttpStatus { status: 400, .. }
    ));
    assert!(error.to_string().contains("Invalid 'To' Phone Number"));
    assert_eq!(requests(&server).await, 1, "no retry after a 4xx");
}

#[tokio::test]
async fn a_429_is_retried_after_retry_after() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(429).insert_header("Retry-After", "1"))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({"sid": "SM2"})))
        .mount(&server)
        .await;
    let started = Instant::now();
    let receipt = twilio(&server).send_sms(&sms("hello")).await.unwrap();
    assert_eq!(receipt.provider_message_id.as_deref(), Some("SM2"));
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "Retry-After honoured: {:?}",
        started.elapsed()
    );
    assert_eq!(requests(&server).await, 2);
}

#[tokio::test]
async fn a_long_retry_after_is_handed_back_to_the_caller() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(429).insert_header("Retry-After", "120"))
        .mount(&server)
        .await;
    let error = twilio(&server).send_sms(&sms("hello")).await.unwrap_err();
    assert!(error.is_transient());
    assert_eq!(error.retry_after(), Some(Duration::from_secs(120)));
    assert_eq!(requests(&server).await, 1, "not waited for in place");
    let handler_error = error.into_handler_error();
    assert_eq!(handler_error.retry_delay(), Some(Duration::from_secs(120)));
}

#[tokio::test]
async fn a_500_is_retried_then_reported_as_transient() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(500).set_body_string("upstream broke"))
        .mount(&server)
        .await;
    let error = twilio(&server).send_sms(&sms("hello")).await.unwrap_err();
    assert!(error.is_transient());
    assert!(matches!(
        error,
        NotificationError::HttpStatus { status: 500, .. }
    ));
    assert_eq!(requests(&server).await, 3, "max_attempts in all");
}

#[tokio::test]
async fn a_500_then_success_is_delivered() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(503))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"sid": "SM3"})))
        .mount(&server)
        .await;
    let receipt = twilio(&server).send_sms(&sms("hello")).await.unwrap();
    assert_eq!(receipt.provider_message_id.as_deref(), Some("SM3"));
}

#[tokio::test]
async fn a_timeout_is_retried_then_reported_as_transient() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(2)))
        .mount(&server)
        .await;
    let error = twilio(&server).send_sms(&sms("hello")).await.unwrap_err();
    assert!(error.is_transient());
    assert!(
        matches!(
            error,
            NotificationError::HttpTransport { timeout: true, .. }
        ),
        "{error:?}"
    );
    assert_eq!(requests(&server).await, 3);
}

#[tokio::test]
async fn the_sms_webhook_posts_json_with_an_idempotency_key() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/sms"))
        .and(bearer_token("hook-secret"))
        .and(header("idempotency-key", "ref-1"))
        .and(body_json(
            json!({"to": "+14155550100", "text": "hi", "reference": "ref-1"}),
        ))
        .respond_with(ResponseTemplate::new(202).set_body_json(json!({"id": "w-1"})))
        .expect(1)
        .mount(&server)
        .await;
    let provider = WebhookSmsProvider::new(
        WebhookConfig::new(format!("{}/sms", server.uri()))
            .with_bearer_token("hook-secret")
            .with_http(fast_http()),
    )
    .unwrap();
    let receipt = provider
        .send_sms(&sms("hi").with_reference("ref-1"))
        .await
        .unwrap();
    assert_eq!(receipt.provider_message_id.as_deref(), Some("w-1"));
}

#[tokio::test]
async fn fcm_posts_a_v1_message_with_a_bearer_token() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(FCM_PATH))
        .and(bearer_token("ya29.test"))
        .and(body_json(json!({
            "message": {
                "token": "device-token-1",
                "notification": {"title": "Hello", "body": "World"},
                "data": {"order": "17"}
            }
        })))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"name": "projects/demo-project/messages/0:123"})),
        )
        .expect(1)
        .mount(&server)
        .await;
    let push = PushMessage::new(
        DeviceToken::parse("device-token-1").unwrap(),
        "Hello",
        "World",
    )
    .with_data("order", "17");
    let receipt = fcm(&server).send_push(&push).await.unwrap();
    assert_eq!(
        receipt.provider_message_id.as_deref(),
        Some("projects/demo-project/messages/0:123")
    );
}

#[tokio::test]
async fn fcm_push_errors_are_classified() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(404).set_body_json(
            json!({"error": {"status": "NOT_FOUND", "message": "Requested entity was not found."}}),
        ))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(429).insert_header("Retry-After", "0"))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"name": "projects/p/messages/1"})),
        )
        .mount(&server)
        .await;
    let provider = fcm(&server);
    let push = PushMessage::new(DeviceToken::parse("stale-token").unwrap(), "t", "b");
    let error = provider.send_push(&push).await.unwrap_err();
    assert!(error.is_permanent());
    // 429 with Retry-After: 0 is retried at once and then succeeds.
    provider.send_push(&push).await.unwrap();
    assert_eq!(requests(&server).await, 3);
}

#[tokio::test]
async fn the_push_webhook_posts_json() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/push"))
        .and(body_json(
            json!({"token": "tok", "title": "T", "body": "B", "data": {}, "reference": null}),
        ))
        .respond_with(ResponseTemplate::new(204))
        .expect(1)
        .mount(&server)
        .await;
    let provider = WebhookPushProvider::new(
        WebhookConfig::new(format!("{}/push", server.uri())).with_http(fast_http()),
    )
    .unwrap();
    let receipt = provider
        .send_push(&PushMessage::new(
            DeviceToken::parse("tok").unwrap(),
            "T",
            "B",
        ))
        .await
        .unwrap();
    assert_eq!(receipt.provider_message_id, None);
}

#[tokio::test]
async fn the_service_records_sms_and_push_sends() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(TWILIO_PATH))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({"sid": "SM9"})))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(FCM_PATH))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"name": "projects/p/messages/9"})),
        )
        .mount(&server)
        .await;
    let store = InMemoryNotificationStore::new();
    let service = NotificationService::new(
        Arc::new(store.clone()),
        Arc::new(notification::store::InMemoryTemplateStore::new()),
    )
    .with_sms(Arc::new(twilio(&server)))
    .with_push(Arc::new(fcm(&server)));

    let sms = service
        .send_sms(SmsRequest::new("u1", "+14155550100", "Your code is 1").unwrap())
        .await
        .unwrap();
    assert_eq!(sms.status, NotificationStatus::Sent);
    let push = service
        .send_push(PushRequest::new("u1", "device-1", "Hi", "There").unwrap())
        .await
        .unwrap();
    assert_eq!(push.status, NotificationStatus::Sent);

    service
        .create_template(
            MessageTemplate::new("code", TemplateKind::Sms, "Code: {{code}}")
                .with_variables(["code"]),
        )
        .await
        .unwrap();
    service
        .create_template(
            MessageTemplate::new("promo", TemplateKind::Push, "{{pct}}% off")
                .with_subject("Hi {{name}}")
                .with_variables(["pct", "name"]),
        )
        .await
        .unwrap();
    service
        .send_sms_with_template(
            SmsRequest::template(
                "u1",
                "+14155550100",
                TemplateRef::new("code").with_variable("code", "77"),
            )
            .unwrap(),
        )
        .await
        .unwrap();
    service
        .send_push_with_template(
            PushRequest::template(
                "u1",
                "device-1",
                TemplateRef::new("promo")
                    .with_variable("pct", 20)
                    .with_variable("name", "Ann"),
            )
            .unwrap(),
        )
        .await
        .unwrap();
    let sent = server.received_requests().await.unwrap();
    let templated_sms = String::from_utf8_lossy(&sent[2].body).into_owned();
    assert!(templated_sms.contains("Body=Code%3A+77"), "{templated_sms}");
    let templated_push: serde_json::Value = serde_json::from_slice(&sent[3].body).unwrap();
    assert_eq!(
        templated_push["message"]["notification"],
        json!({"title": "Hi Ann", "body": "20% off"})
    );
    assert_eq!(store.len(), 4);
    assert!(
        store
            .all()
            .iter()
            .all(|n| n.status == NotificationStatus::Sent)
    );
}

#[tokio::test]
async fn phone_numbers_must_be_e164() {
    for bad in [
        "4155550100",
        "+1 415 555 0100",
        "+1-415-555-0100",
        "+0155550100",
        "+12",
        "tel:+14155550100",
    ] {
        // Refused when the request is built: it cannot reach the service.
        let error = SmsRequest::new("u", bad, "hi").unwrap_err();
        assert!(
            matches!(error, NotificationError::InvalidPhoneNumber { .. }),
            "{bad}: {error}"
        );
        // And as a payload (what a `notification.sms` event carries).
        let payload = json!({"user_id": "u", "to": bad, "text": "hi"});
        assert!(
            serde_json::from_value::<SmsRequest>(payload).is_err(),
            "{bad}"
        );
    }
}

#[tokio::test]
async fn batch_sms_reports_each_recipient() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(body_string_contains("To=%2B14155550103"))
        .respond_with(ResponseTemplate::new(400).set_body_string("blocked number"))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({"sid": "SMx"})))
        .mount(&server)
        .await;
    let service = NotificationService::in_memory().with_sms(Arc::new(twilio(&server)));
    let requests: Vec<SmsRequest> = (0..6)
        .map(|i| SmsRequest::new(format!("u{i}"), format!("+1415555010{i}"), "Sale today").unwrap())
        .collect();
    // A bad number is refused when its request is built, before any batch.
    assert!(matches!(
        SmsRequest::new("u-bad", "555", "Sale today"),
        Err(NotificationError::InvalidPhoneNumber { .. })
    ));
    let outcomes = service.send_batch_sms(requests).await;
    let sent: Vec<bool> = outcomes.iter().map(|outcome| outcome.is_sent()).collect();
    assert_eq!(sent, [true, true, true, false, true, true]);
    assert_eq!(outcomes[3].recipient, "+14155550103");
    assert!(outcomes[3].result.as_ref().unwrap_err().is_permanent());
}
