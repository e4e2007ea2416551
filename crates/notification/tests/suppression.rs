//! The suppression list in the service: a send to a suppressed address is
//! recorded `suppressed`, and reaches no channel.

use std::sync::Arc;

use messaging_model::{NotificationKind, NotificationStatus};
use notification::channel::{EmailMessage, PhoneNumber, RecordingChannel, SmsMessage};
use notification::store::{
    InMemoryNotificationStore, InMemorySuppressionStore, InMemoryTemplateStore, NotificationStore,
    Suppression, SuppressionReason, SuppressionStore,
};
use notification::{EmailRequest, NotificationService, SmsRequest};

#[tokio::test]
async fn a_send_to_a_suppressed_address_is_recorded_suppressed_and_not_sent() {
    let email = RecordingChannel::<EmailMessage>::new();
    let sms = RecordingChannel::<SmsMessage>::new();
    let store = InMemoryNotificationStore::new();
    let suppressions = InMemorySuppressionStore::new();
    let service = NotificationService::new(
        Arc::new(store.clone()),
        Arc::new(InMemoryTemplateStore::new()),
    )
    .with_email(Arc::new(email.clone()))
    .with_sms(Arc::new(sms.clone()))
    .with_suppressions(Arc::new(suppressions.clone()));

    suppressions
        .suppress(
            &Suppression::new(
                NotificationKind::Email,
                "ann@example.com",
                SuppressionReason::HardBounce,
                chrono::Utc::now(),
            )
            .with_detail("550 5.1.1 no such user"),
        )
        .await
        .unwrap();
    // Suppressed for email only: the same string as an SMS recipient is not.
    suppressions
        .suppress(&Suppression::new(
            NotificationKind::Email,
            "+15550100",
            SuppressionReason::Complaint,
            chrono::Utc::now(),
        ))
        .await
        .unwrap();

    let suppressed = service
        .send_email(EmailRequest::new("u1", "Ann@Example.com", "Hello", "Hi").unwrap())
        .await
        .expect("a suppressed send is not an error");
    assert_eq!(suppressed.status, NotificationStatus::Suppressed);
    let error = suppressed.error.as_deref().unwrap();
    assert!(
        error.contains("hard_bounce") && error.contains("550 5.1.1"),
        "{error}"
    );
    assert!(email.sent().is_empty(), "nothing handed to the channel");
    assert_eq!(email.attempts(), 0);
    let stored = store.get_notification("u1", suppressed.id).await.unwrap();
    assert_eq!(stored.status, NotificationStatus::Suppressed);
    assert!(
        store
            .list_attempts("u1", suppressed.id)
            .await
            .unwrap()
            .is_empty(),
        "no attempt was made"
    );

    let sent = service
        .send_email(EmailRequest::new("u1", "bob@example.com", "Hello", "Hi").unwrap())
        .await
        .unwrap();
    assert_eq!(sent.status, NotificationStatus::Sent);
    assert_eq!(email.sent().len(), 1);

    let to = PhoneNumber::parse("+15550100").unwrap();
    let text = service
        .send_sms(SmsRequest::new("u1", to.as_str(), "code 1234").unwrap())
        .await
        .unwrap();
    assert_eq!(
        text.status,
        NotificationStatus::Sent,
        "suppressed per channel"
    );
    assert_eq!(sms.sent().len(), 1);

    // Lifted: sent again.
    assert!(
        suppressions
            .remove_suppression(NotificationKind::Email, "ann@example.com")
            .await
            .unwrap()
    );
    let after = service
        .send_email(EmailRequest::new("u1", "ann@example.com", "Hello", "Hi").unwrap())
        .await
        .unwrap();
    assert_eq!(after.status, NotificationStatus::Sent);
    assert_eq!(email.sent().len(), 2);
}

#[tokio::test]
async fn a_suppressed_send_with_an_idempotency_key_replays_as_suppressed() {
    let email = RecordingChannel::<EmailMessage>::new();
    let suppressions = InMemorySuppressionStore::new();
    let service = NotificationService::in_memory()
        .with_email(Arc::new(email.clone()))
        .with_suppressions(Arc::new(suppressions.clone()));
    suppressions
        .suppress(&Suppression::new(
            NotificationKind::Email,
            "ann@example.com",
            SuppressionReason::Complaint,
            chrono::Utc::now(),
        ))
        .await
        .unwrap();
    let request = || {
        EmailRequest::new("u1", "ann@example.com", "Hello", "Hi")
            .unwrap()
            .with_idempotency_key("k1")
    };
    let first = service.send_email(request()).await.unwrap();
    let again = service.send_email(request()).await.unwrap();
    assert_eq!(first.id, again.id);
    assert_eq!(again.status, NotificationStatus::Suppressed);
    assert!(email.sent().is_empty());
}

#[tokio::test]
async fn a_redelivered_event_for_an_address_suppressed_since_is_recorded_suppressed() {
    use notification::NotificationAction;
    use notification::channel::StubFailure;
    let email = RecordingChannel::<EmailMessage>::new();
    let store = InMemoryNotificationStore::new();
    let suppressions = InMemorySuppressionStore::new();
    let service = NotificationService::new(
        Arc::new(store.clone()),
        Arc::new(InMemoryTemplateStore::new()),
    )
    .with_email(Arc::new(email.clone()))
    .with_suppressions(Arc::new(suppressions.clone()));
    let action = || {
        NotificationAction::from(EmailRequest::new("u1", "ann@example.com", "Hello", "Hi").unwrap())
    };
    email.fail_next(1, StubFailure::Transient);
    assert!(service.execute_once(action(), "event-1").await.is_err());
    assert_eq!(email.attempts(), 1);
    suppressions
        .suppress(&Suppression::new(
            NotificationKind::Email,
            "ann@example.com",
            SuppressionReason::HardBounce,
            chrono::Utc::now(),
        ))
        .await
        .unwrap();
    // The redelivery of the same event: nothing handed to the channel, and
    // the row that was `failed` says why.
    let redelivered = service
        .execute_once(action(), "event-1")
        .await
        .expect("a suppressed redelivery is not an error to retry");
    assert_eq!(email.attempts(), 1, "not sent to a suppressed address");
    assert!(email.sent().is_empty());
    assert_eq!(redelivered.status, NotificationStatus::Suppressed);
    assert!(
        redelivered
            .error
            .as_deref()
            .is_some_and(|e| e.contains("hard_bounce")),
        "{:?}",
        redelivered.error
    );
    let stored = store.get_notification("u1", redelivered.id).await.unwrap();
    assert_eq!(stored, redelivered);
    let log = store.list_attempts("u1", redelivered.id).await.unwrap();
    assert_eq!(log.len(), 1, "only the refused attempt is logged: {log:?}");
    // Once more: the same row, still suppressed, still nothing sent.
    let again = service.execute_once(action(), "event-1").await.unwrap();
    assert_eq!(
        (again.id, again.status),
        (redelivered.id, NotificationStatus::Suppressed)
    );
    assert_eq!(email.attempts(), 1);
}

#[tokio::test]
async fn an_interrupted_send_redelivered_after_its_address_was_suppressed_is_marked_unknown() {
    use messaging_model::{AttemptOutcome, Notification};
    use notification::NotificationAction;
    let email = RecordingChannel::<EmailMessage>::new();
    let store = InMemoryNotificationStore::new();
    let suppressions = InMemorySuppressionStore::new();
    let service = NotificationService::new(
        Arc::new(store.clone()),
        Arc::new(InMemoryTemplateStore::new()),
    )
    .with_email(Arc::new(email.clone()))
    .with_suppressions(Arc::new(suppressions.clone()));
    // A worker killed after handing the email over: the row `sending`.
    let key = "event-2";
    let mut row = Notification::new("u1", NotificationKind::Email, "Hello", "Hi");
    row.idempotency_key = Some(key.to_owned());
    store.record(&row).await.unwrap();
    store
        .begin_attempt(row.id, 0, chrono::Utc::now())
        .await
        .unwrap();
    suppressions
        .suppress(&Suppression::new(
            NotificationKind::Email,
            "ann@example.com",
            SuppressionReason::Complaint,
            chrono::Utc::now(),
        ))
        .await
        .unwrap();
    let action = NotificationAction::from(
        EmailRequest::new("u1", "ann@example.com", "Hello", "Hi").unwrap(),
    );
    let answer = service.execute_once(action, key).await.unwrap();
    // It may have arrived: not `suppressed` (that means never sent), and not
    // sent again.
    assert_eq!(
        (answer.id, answer.status),
        (row.id, NotificationStatus::Unknown)
    );
    assert_eq!(email.attempts(), 0);
    let log = store.list_attempts("u1", row.id).await.unwrap();
    let outcomes: Vec<(u32, AttemptOutcome)> = log.iter().map(|a| (a.number, a.outcome)).collect();
    assert_eq!(outcomes, [(1, AttemptOutcome::Unknown)]);
}
