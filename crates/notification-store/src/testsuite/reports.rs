//! [`DeliveryReportStore`]: provider reports matched by provider message id.

use messaging_model::{
    AttemptOutcome, DeliveryAttempt, DeliveryReport, Notification, NotificationStatus,
};
use uuid::Uuid;

use crate::{DeliveryReportStore, NotificationStore};

use super::fixtures::*;

/// A notification of `user` sent (attempt 1, accepted with `provider_message_id`).
async fn sent_with_id<S>(store: &S, user: &str, provider_message_id: &str) -> Notification
where
    S: NotificationStore + ?Sized,
{
    let n = notification(user, 0);
    store.record(&n).await.expect("record");
    store.begin_attempt(n.id, 0, at(1)).await.expect("begin");
    let attempt = DeliveryAttempt::new(&n, 1, "smtp-a", AttemptOutcome::Sent)
        .with_started_at(at(1))
        .with_provider_message_id(provider_message_id);
    let sent = store
        .record_attempt(&attempt)
        .await
        .expect("record attempt");
    assert_eq!(sent.status, NotificationStatus::Sent);
    sent
}

/// A report names its notification by the provider message id its attempt
/// logged: the notification takes the report's status and reason, and the
/// attempt the report.
pub async fn a_report_updates_the_notification_and_its_attempt<S>(store: &S)
where
    S: NotificationStore + DeliveryReportStore + ?Sized,
{
    let user = fresh_user("ann");
    let pmid = format!("<{}@mail.example>", Uuid::now_v7().simple());
    let sent = sent_with_id(store, &user, &pmid).await;
    let found = store
        .find_by_provider_message_id(&pmid)
        .await
        .expect("find")
        .expect("found by its provider message id");
    assert_eq!(found, sent);

    let attempts = NotificationStore::list_attempts(store, &user, sent.id)
        .await
        .expect("attempts");
    assert_eq!(attempts[0].provider_message_id.as_deref(), Some(&*pmid));
    assert_eq!(attempts[0].provider, "smtp-a");

    let report = DeliveryReport::new(NotificationStatus::Bounced, at(5))
        .with_reason("550 5.1.1 no such user");
    let bounced = store
        .record_delivery_report(&pmid, &report)
        .await
        .expect("report")
        .expect("matched");
    assert_eq!(bounced.status, NotificationStatus::Bounced);
    assert_eq!(bounced.error.as_deref(), Some("550 5.1.1 no such user"));
    assert_eq!(bounced.sent_at, sent.sent_at, "still sent when it was");
    assert_eq!(
        NotificationStore::get_notification(store, &user, sent.id)
            .await
            .expect("get"),
        bounced
    );
    let attempts = NotificationStore::list_attempts(store, &user, sent.id)
        .await
        .expect("attempts");
    assert_eq!(attempts.len(), 1, "a report adds no attempt");
    assert_eq!(attempts[0].report, Some(report));
}

/// A report naming an id no attempt logged matches nothing and changes nothing.
pub async fn a_report_of_an_unknown_provider_message_id_matches_nothing<S>(store: &S)
where
    S: NotificationStore + DeliveryReportStore + ?Sized,
{
    let user = fresh_user("ann");
    let pmid = format!("known-{}", Uuid::now_v7().simple());
    let sent = sent_with_id(store, &user, &pmid).await;
    let other = format!("unknown-{}", Uuid::now_v7().simple());
    assert_eq!(
        store
            .find_by_provider_message_id(&other)
            .await
            .expect("find"),
        None
    );
    let report = DeliveryReport::new(NotificationStatus::Delivered, at(5));
    assert_eq!(
        store
            .record_delivery_report(&other, &report)
            .await
            .expect("report"),
        None
    );
    assert_eq!(
        NotificationStore::get_notification(store, &user, sent.id)
            .await
            .expect("get"),
        sent
    );
}

/// Reports arrive in any order: a complaint after a delivery wins, a late
/// "delivered" after a complaint changes nothing; a status no provider
/// reports is refused.
pub async fn a_lower_ranking_report_never_replaces_a_higher_one<S>(store: &S)
where
    S: NotificationStore + DeliveryReportStore + ?Sized,
{
    let user = fresh_user("ann");
    let pmid = format!("rank-{}", Uuid::now_v7().simple());
    let sent = sent_with_id(store, &user, &pmid).await;
    let delivered = DeliveryReport::new(NotificationStatus::Delivered, at(5));
    let n = store
        .record_delivery_report(&pmid, &delivered)
        .await
        .expect("delivered")
        .expect("matched");
    assert_eq!((n.status, n.error), (NotificationStatus::Delivered, None));

    let complained =
        DeliveryReport::new(NotificationStatus::Complained, at(6)).with_reason("abuse");
    let n = store
        .record_delivery_report(&pmid, &complained)
        .await
        .expect("complained")
        .expect("matched");
    assert_eq!(n.status, NotificationStatus::Complained);

    let late = DeliveryReport::new(NotificationStatus::Delivered, at(7));
    let n = store
        .record_delivery_report(&pmid, &late)
        .await
        .expect("late")
        .expect("matched");
    assert_eq!(
        (n.status, n.error.as_deref()),
        (NotificationStatus::Complained, Some("abuse"))
    );
    let attempts = NotificationStore::list_attempts(store, &user, sent.id)
        .await
        .expect("attempts");
    assert_eq!(attempts[0].report, Some(complained));

    assert_invalid_input(
        store
            .record_delivery_report(
                &pmid,
                &DeliveryReport::new(NotificationStatus::Sending, at(8)),
            )
            .await,
        "a report cannot set sending",
    );
}

/// The provider message id a notification's accepted attempt logged is found
/// by the notification's id (the latest accepted attempt's; refused attempts
/// and other notifications are not it); an unknown or never-accepted
/// notification has none.
pub async fn the_accepted_provider_message_id_is_found_by_notification_id<S>(store: &S)
where
    S: NotificationStore + DeliveryReportStore + ?Sized,
{
    let user = fresh_user("ann");
    let pmid = format!("accepted-{}", Uuid::now_v7().simple());
    let sent = sent_with_id(store, &user, &pmid).await;
    // A failed-over provider's refusal, logged after the accepted attempt.
    store
        .record_attempt(
            &DeliveryAttempt::new(&sent, 1, "smtp-b", AttemptOutcome::Failed)
                .with_started_at(at(1))
                .with_error("421 busy"),
        )
        .await
        .expect("refusal");
    let _other = sent_with_id(store, &user, &format!("other-{}", Uuid::now_v7().simple())).await;
    assert_eq!(
        store
            .accepted_provider_message_id(sent.id)
            .await
            .expect("find"),
        Some(pmid)
    );

    let refused = notification(&user, 2);
    store.record(&refused).await.expect("record");
    store
        .begin_attempt(refused.id, 0, at(3))
        .await
        .expect("begin");
    store
        .record_attempt(
            &DeliveryAttempt::new(&refused, 1, "smtp-a", AttemptOutcome::Failed)
                .with_started_at(at(3))
                .with_error("451 later"),
        )
        .await
        .expect("refused");
    for id in [refused.id, Uuid::now_v7()] {
        assert_eq!(
            store.accepted_provider_message_id(id).await.expect("find"),
            None
        );
    }
}
