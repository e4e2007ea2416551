//! Notifications the user's preferences hold back: `skipped` (with the reason)
//! and `scheduled` (sent later) are kept as recorded, a scheduled one can still
//! be skipped, and a scheduled one is attempted like a pending one.

use messaging_model::NotificationStatus;
use serde_json::json;
use uuid::Uuid;

use crate::{NotificationStore, StatusUpdate};

use super::fixtures::*;

/// `skipped` and `scheduled` rows come back as recorded.
pub async fn skipped_and_scheduled_notifications_are_kept_as_recorded<S>(store: &S)
where
    S: NotificationStore + ?Sized,
{
    let user = fresh_user("alice");
    let mut skipped = notification(&user, 0).with_idempotency_key("k-skipped");
    skipped.status = NotificationStatus::Skipped;
    skipped.error = Some("opted out of marketing by email".into());
    let mut scheduled = notification(&user, 1)
        .with_metadata(json!({"category": "billing", "scheduled_for": "2026-01-16T06:00:00Z"}));
    scheduled.status = NotificationStatus::Scheduled;
    store.record(&skipped).await.expect("record skipped");
    store.record(&scheduled).await.expect("record scheduled");
    for n in [&skipped, &scheduled] {
        let stored = NotificationStore::get_notification(store, &user, n.id)
            .await
            .expect("get");
        assert_eq!(&stored, n);
    }
}

/// `update_status(Skipped)` moves a `scheduled` (or `pending`) row to
/// `skipped` with the reason, and refuses (Conflict, nothing changes) a row
/// being sent or sent; an unknown id is `NotFound`.
pub async fn update_status_to_skipped_only_from_pending_or_scheduled<S>(store: &S)
where
    S: NotificationStore + ?Sized,
{
    let user = fresh_user("alice");
    let mut scheduled = notification(&user, 0);
    scheduled.status = NotificationStatus::Scheduled;
    store.record(&scheduled).await.expect("record");
    let skipped = store
        .update_status(
            scheduled.id,
            StatusUpdate::Skipped {
                reason: "opted out of everything".into(),
            },
        )
        .await
        .expect("skip");
    assert_eq!(skipped.status, NotificationStatus::Skipped);
    assert_eq!(skipped.error.as_deref(), Some("opted out of everything"));
    assert_eq!(
        NotificationStore::get_notification(store, &user, scheduled.id)
            .await
            .expect("get"),
        skipped
    );

    let sending = notification(&user, 1);
    store.record(&sending).await.expect("record");
    let sending = store
        .begin_attempt(sending.id, 0, at(2))
        .await
        .expect("begin");
    let refused = store
        .update_status(
            sending.id,
            StatusUpdate::Skipped {
                reason: "late".into(),
            },
        )
        .await;
    assert!(
        refused.as_ref().is_err_and(|e| e.is_conflict()),
        "{refused:?}"
    );
    assert_eq!(
        NotificationStore::get_notification(store, &user, sending.id)
            .await
            .expect("get"),
        sending
    );
    let unknown = store
        .update_status(Uuid::now_v7(), StatusUpdate::Skipped { reason: "x".into() })
        .await;
    assert!(unknown.is_err_and(|e| e.is_not_found()));
}

/// A `scheduled` row is attempted like a `pending` one when it is due.
pub async fn begin_attempt_of_a_scheduled_notification_marks_it_sending<S>(store: &S)
where
    S: NotificationStore + ?Sized,
{
    let user = fresh_user("alice");
    let mut scheduled = notification(&user, 0);
    scheduled.status = NotificationStatus::Scheduled;
    store.record(&scheduled).await.expect("record");
    let sending = store
        .begin_attempt(scheduled.id, 0, at(5))
        .await
        .expect("begin");
    assert_eq!(sending.status, NotificationStatus::Sending);
    assert_eq!(sending.attempts, 1);
    // The second of two delayed messages loses the compare-and-set.
    assert!(
        store
            .begin_attempt(scheduled.id, 0, at(6))
            .await
            .is_err_and(|e| e.is_conflict())
    );
}

/// `update_status(Suppressed)` moves a `pending`, `scheduled` or `failed` row
/// (never handed over, or refused) to `suppressed` with the reason, and
/// refuses (Conflict, nothing changes) a row being sent or sent; an unknown id
/// is `NotFound`.
pub async fn update_status_to_suppressed_only_from_pending_scheduled_or_failed<S>(store: &S)
where
    S: NotificationStore + ?Sized,
{
    use messaging_model::{AttemptOutcome, DeliveryAttempt};
    let user = fresh_user("alice");
    let reason = "recipient suppressed (hard_bounce): 550 no such user";
    let suppress = || StatusUpdate::Suppressed {
        reason: reason.into(),
    };

    let pending = notification(&user, 0);
    let mut scheduled = notification(&user, 1);
    scheduled.status = NotificationStatus::Scheduled;
    let failed = notification(&user, 2);
    for n in [&pending, &scheduled, &failed] {
        store.record(n).await.expect("record");
    }
    let sending = store
        .begin_attempt(failed.id, 0, at(3))
        .await
        .expect("begin");
    let failed = store
        .record_attempt(
            &DeliveryAttempt::new(&sending, 1, "smtp", AttemptOutcome::Failed)
                .with_started_at(at(3))
                .with_error("451 try again later"),
        )
        .await
        .expect("failed attempt");
    assert_eq!(failed.status, NotificationStatus::Failed);
    for n in [&pending, &scheduled, &failed] {
        let suppressed = store
            .update_status(n.id, suppress())
            .await
            .expect("suppress");
        assert_eq!(suppressed.status, NotificationStatus::Suppressed);
        assert_eq!(suppressed.error.as_deref(), Some(reason));
        assert_eq!(suppressed.attempts, n.attempts, "no attempt is counted");
        assert_eq!(
            NotificationStore::get_notification(store, &user, n.id)
                .await
                .expect("get"),
            suppressed
        );
    }
    assert_eq!(
        store
            .list_attempts(&user, failed.id)
            .await
            .expect("log")
            .len(),
        1,
        "the refused attempt stays logged"
    );

    let in_flight = notification(&user, 4);
    store.record(&in_flight).await.expect("record");
    let in_flight = store
        .begin_attempt(in_flight.id, 0, at(5))
        .await
        .expect("begin");
    let sent = notification(&user, 6);
    store.record(&sent).await.expect("record");
    let sent = store
        .update_status(sent.id, StatusUpdate::Sent { at: at(7) })
        .await
        .expect("sent");
    for n in [&in_flight, &sent] {
        let refused = store.update_status(n.id, suppress()).await;
        assert!(
            refused.as_ref().is_err_and(|e| e.is_conflict()),
            "{refused:?}"
        );
        assert_eq!(
            &NotificationStore::get_notification(store, &user, n.id)
                .await
                .expect("get"),
            n
        );
    }
    let unknown = store.update_status(Uuid::now_v7(), suppress()).await;
    assert!(unknown.is_err_and(|e| e.is_not_found()));
}
