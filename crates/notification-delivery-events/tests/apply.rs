//! `apply::DeliveryEventApplier` against the in-memory stores and PostgreSQL
//! (a schema per test, dropped at the end): notifications found by the
//! provider message id their send logged, updated with the provider's
//! outcome, and the suppression list kept.
//!
//! ```text
//! DATABASE_URL=postgres://postgres@127.0.0.1:5432/test cargo test -p notification-delivery-events --test apply
//! ```

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use messaging_model::{
    AttemptOutcome, DeliveryAttempt, Notification, NotificationKind, NotificationStatus,
};
use notification_delivery_events::apply::DeliveryEventApplier;
use notification_delivery_events::postmark::PostmarkVerifier;
use notification_delivery_events::{DeliveryEvent, DeliveryKind, Provider};
use notification_store::{
    DeliveryReportStore, InMemoryNotificationStore, InMemorySuppressionStore, NotificationStore,
    SoftBouncePolicy, SuppressionReason, SuppressionStore,
};
use notification_store_postgres::{PostgresStore, PostgresStoreConfig};
use sqlx::AssertSqlSafe;

fn at(seconds: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap() + chrono::Duration::seconds(seconds)
}

fn fresh(label: &str) -> String {
    format!("{label}-{}", uuid::Uuid::now_v7().simple())
}

/// A notification of `kind` to `to`, sent and logged with `pmid`.
async fn sent<S>(store: &S, kind: NotificationKind, to: &str, pmid: &str) -> Notification
where
    S: NotificationStore + ?Sized,
{
    let n = Notification::new(fresh("user"), kind, "Hello", "Hi")
        .with_metadata(serde_json::json!({ "to": to }));
    store.record(&n).await.unwrap();
    store.begin_attempt(n.id, 0, Utc::now()).await.unwrap();
    let attempt =
        DeliveryAttempt::new(&n, 1, "relay-a", AttemptOutcome::Sent).with_provider_message_id(pmid);
    store.record_attempt(&attempt).await.unwrap()
}

fn event(
    provider: Provider,
    pmid: &str,
    recipient: Option<&str>,
    kind: DeliveryKind,
    seconds: i64,
) -> DeliveryEvent {
    DeliveryEvent {
        provider,
        provider_message_id: pmid.to_owned(),
        notification_id: None,
        recipient: recipient.map(str::to_owned),
        kind,
        reason: Some(format!("reason of {pmid}")),
        occurred_at: at(seconds),
    }
}

/// Every rule of the applier, on one pair of stores.
async fn scenario<N, S>(notifications: Arc<N>, suppressions: Arc<S>)
where
    N: NotificationStore + DeliveryReportStore,
    S: SuppressionStore,
{
    let applier = DeliveryEventApplier::new(notifications.clone(), suppressions.clone())
        .with_soft_bounce_policy(SoftBouncePolicy::new(2, Duration::from_secs(3600)));
    let email = NotificationKind::Email;

    // Delivered: the notification and its attempt say so; nothing suppressed.
    let ann = format!("{}@example.com", fresh("ann"));
    let pmid = fresh("pm");
    let n = sent(&*notifications, email, &ann, &pmid).await;
    let applied = applier
        .apply(&event(
            Provider::Mailgun,
            &pmid,
            Some(&ann),
            DeliveryKind::Delivered,
            1,
        ))
        .await
        .unwrap();
    let delivered = applied
        .notification
        .expect("matched by provider message id");
    assert_eq!(
        (delivered.id, delivered.status),
        (n.id, NotificationStatus::Delivered)
    );
    assert_eq!(applied.suppression, None);
    let attempts = notifications.list_attempts(&n.user_id, n.id).await.unwrap();
    assert_eq!(attempts[0].provider, "relay-a");
    assert_eq!(
        attempts[0].report.as_ref().map(|r| r.status),
        Some(NotificationStatus::Delivered)
    );

    // Hard bounce: bounced with the provider's reason, address suppressed.
    let bob = format!("{}@example.com", fresh("bob"));
    let pmid = fresh("pm");
    let n = sent(&*notifications, email, &bob, &pmid).await;
    let applied = applier
        .apply(&event(
            Provider::SendGrid,
            &pmid,
            Some(&bob),
            DeliveryKind::Bounced { hard: true },
            2,
        ))
        .await
        .unwrap();
    let bounced = applied.notification.unwrap();
    assert_eq!(bounced.status, NotificationStatus::Bounced);
    assert_eq!(bounced.error, Some(format!("reason of {pmid}")));
    let suppression = applied.suppression.expect("a hard bounce suppresses");
    assert_eq!(suppression.reason, SuppressionReason::HardBounce);
    assert!(
        suppression
            .detail
            .unwrap()
            .starts_with("sendgrid: reason of")
    );
    assert!(
        suppressions
            .find_suppression(email, &bob)
            .await
            .unwrap()
            .is_some()
    );
    let _ = n;

    // Complaint without a recipient in the event: the notification's `to`.
    let carol = format!("{}@example.com", fresh("carol"));
    let pmid = fresh("pm");
    sent(&*notifications, email, &carol, &pmid).await;
    let applied = applier
        .apply(&event(
            Provider::AmazonSes,
            &pmid,
            None,
            DeliveryKind::Complained,
            3,
        ))
        .await
        .unwrap();
    assert_eq!(
        applied.notification.unwrap().status,
        NotificationStatus::Complained
    );
    assert_eq!(
        suppressions
            .find_suppression(email, &carol)
            .await
            .unwrap()
            .map(|s| s.reason),
        Some(SuppressionReason::Complaint)
    );

    // Soft bounces: suppressed at the second within the hour, not before.
    let dave = format!("{}@example.com", fresh("dave"));
    let first = applier
        .apply(&event(
            Provider::Postmark,
            &fresh("pm"),
            Some(&dave),
            DeliveryKind::Bounced { hard: false },
            10,
        ))
        .await
        .unwrap();
    assert_eq!(first.suppression, None);
    assert!(
        first.notification.is_none(),
        "no send of ours logged that id"
    );
    let second = applier
        .apply(&event(
            Provider::Postmark,
            &fresh("pm"),
            Some(&dave),
            DeliveryKind::Bounced { hard: false },
            20,
        ))
        .await
        .unwrap();
    assert_eq!(
        second.suppression.map(|s| s.reason),
        Some(SuppressionReason::SoftBounces)
    );

    // Twilio failure: SMS, failed with its reason, nothing suppressed;
    // deferred changes nothing.
    let phone = "+15550123";
    let pmid = fresh("SM");
    let n = sent(&*notifications, NotificationKind::Sms, phone, &pmid).await;
    let applied = applier
        .apply(&event(
            Provider::Twilio,
            &pmid,
            None,
            DeliveryKind::Deferred,
            30,
        ))
        .await
        .unwrap();
    assert!(applied.notification.is_none() && applied.suppression.is_none());
    let applied = applier
        .apply(&event(
            Provider::Twilio,
            &pmid,
            Some(phone),
            DeliveryKind::Failed,
            31,
        ))
        .await
        .unwrap();
    let failed = applied.notification.unwrap();
    assert_eq!(
        (failed.id, failed.status),
        (n.id, NotificationStatus::Failed)
    );
    assert_eq!(applied.suppression, None);
    assert_eq!(
        suppressions
            .find_suppression(NotificationKind::Sms, phone)
            .await
            .unwrap(),
        None
    );
    // A hard bounce of an email address says nothing of SMS.
    assert_eq!(
        suppressions
            .find_suppression(NotificationKind::Sms, &bob)
            .await
            .unwrap(),
        None
    );

    // A relay that names its own id (SES, SendGrid, Postmark over SMTP): the
    // event carries the notification id the channel's metadata header sent,
    // and the report goes to that notification's accepted attempt.
    let erin = format!("{}@example.com", fresh("erin"));
    let logged = fresh("message-id");
    let n = sent(&*notifications, email, &erin, &logged).await;
    let mut bounce = event(
        Provider::SendGrid,
        &fresh("sg"),
        Some(&erin),
        DeliveryKind::Bounced { hard: true },
        40,
    );
    bounce.notification_id = Some(n.id);
    let applied = applier.apply(&bounce).await.unwrap();
    let bounced = applied.notification.expect("matched by notification id");
    assert_eq!(
        (bounced.id, bounced.status),
        (n.id, NotificationStatus::Bounced)
    );
    let attempts = notifications.list_attempts(&n.user_id, n.id).await.unwrap();
    assert_eq!(
        attempts[0].report.as_ref().map(|r| r.status),
        Some(NotificationStatus::Bounced)
    );
    assert_eq!(
        applied.suppression.map(|s| s.reason),
        Some(SuppressionReason::HardBounce)
    );
    // A notification id of no send of ours (another system's metadata): the
    // provider message id is looked up instead.
    let fay = format!("{}@example.com", fresh("fay"));
    let pmid = fresh("pm");
    let n = sent(&*notifications, email, &fay, &pmid).await;
    let mut delivered = event(
        Provider::Postmark,
        &pmid,
        Some(&fay),
        DeliveryKind::Delivered,
        41,
    );
    delivered.notification_id = Some(uuid::Uuid::now_v7());
    let applied = applier.apply(&delivered).await.unwrap();
    assert_eq!(
        applied.notification.map(|n| (n.id, n.status)),
        Some((n.id, NotificationStatus::Delivered))
    );
}

#[tokio::test]
async fn applies_events_to_the_in_memory_stores() {
    scenario(
        Arc::new(InMemoryNotificationStore::new()),
        Arc::new(InMemorySuppressionStore::new()),
    )
    .await;
}

/// A migrated PostgreSQL store in a schema of its own.
async fn postgres(schema: &str) -> PostgresStore {
    let url = std::env::var("DATABASE_URL").expect(
        "DATABASE_URL must name a PostgreSQL server, e.g. postgres://postgres@127.0.0.1:5432/test",
    );
    let store = PostgresStore::connect(PostgresStoreConfig::new(url).with_schema(schema))
        .await
        .expect("PostgreSQL at DATABASE_URL");
    store.migrate().await.expect("migrate");
    store
}

async fn drop_schema(store: &PostgresStore, schema: &str) {
    sqlx::raw_sql(AssertSqlSafe(format!(
        "DROP SCHEMA IF EXISTS {schema} CASCADE"
    )))
    .execute(store.pool())
    .await
    .expect("drop the test schema");
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn applies_events_to_postgres_and_a_new_store_instance_sees_the_suppression() {
    let schema = format!("t_{}", uuid::Uuid::now_v7().simple());
    let store = Arc::new(postgres(&schema).await);
    let outcome = tokio::spawn({
        let store = store.clone();
        let schema = schema.clone();
        async move {
            scenario(store.clone(), store.clone()).await;
            // A Postmark callback as it arrives (raw body and headers), then a
            // new store instance (another process, after a restart) reads it.
            let applier = DeliveryEventApplier::new(store.clone(), store.clone());
            let body = br#"{"RecordType":"Bounce","Type":"HardBounce","MessageID":"pm-restart",
              "Email":"Erin@Example.com","BouncedAt":"2026-01-01T00:00:00Z","Description":"no such user"}"#;
            let headers = [("Authorization", "Basic aG9va3M6czNjcmV0")];
            let events = PostmarkVerifier::new("hooks", "s3cret")
                .parse(body, &headers[..])
                .unwrap();
            applier.apply_all(&events).await.unwrap();
            let forged = [("Authorization", "Basic bm9wZTpub3Bl")];
            assert!(PostmarkVerifier::new("hooks", "s3cret").parse(body, &forged[..]).is_err());

            let fresh_instance = postgres(&schema).await;
            let found = fresh_instance
                .find_suppression(NotificationKind::Email, "erin@example.com")
                .await
                .unwrap()
                .expect("kept in PostgreSQL");
            assert_eq!(found.reason, SuppressionReason::HardBounce);
            fresh_instance.close().await;
        }
    })
    .await;
    drop_schema(&store, &schema).await;
    if let Err(error) = outcome {
        std::panic::resume_unwind(error.into_panic());
    }
}
