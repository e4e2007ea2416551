//! `begin_attempt`, `record_attempt` and `list_attempts`: the attempt log.

use messaging_model::{
    AttemptOutcome, DeliveryAttempt, Notification, NotificationKind, NotificationStatus,
};
use uuid::Uuid;

use crate::NotificationStore;

use super::fixtures::*;

/// Attempt `number` of `n` through `"smtp"`, started at `at(seconds)`.
fn attempt(
    n: &Notification,
    number: u32,
    outcome: AttemptOutcome,
    seconds: i64,
) -> DeliveryAttempt {
    DeliveryAttempt::new(n, number, "smtp", outcome).with_started_at(at(seconds))
}

/// `begin_attempt` marks the notification `sending`, counts the attempt and
/// keeps its start; a record made with attempts already counted reads back.
pub async fn begin_attempt_marks_sending_and_counts_attempts<S>(store: &S)
where
    S: NotificationStore + ?Sized,
{
    let user = fresh_user("alice");
    let n = notification(&user, 0);
    store.record(&n).await.expect("record");

    let first = store.begin_attempt(n.id, 0, at(1)).await.expect("begin 1");
    assert_eq!(first.status, NotificationStatus::Sending);
    assert_eq!((first.attempts, first.last_attempt_at), (1, Some(at(1))));
    let stored = NotificationStore::get_notification(store, &user, n.id)
        .await
        .expect("get");
    assert_eq!(stored, first, "begin_attempt returns what is stored");

    let second = store.begin_attempt(n.id, 1, at(2)).await.expect("begin 2");
    assert_eq!((second.attempts, second.last_attempt_at), (2, Some(at(2))));

    let mut counted = notification(&user, 3);
    counted.status = NotificationStatus::Failed;
    counted.attempts = 4;
    counted.last_attempt_at = Some(at(3));
    store.record(&counted).await.expect("record counted");
    assert_eq!(
        NotificationStore::get_notification(store, &user, counted.id)
            .await
            .expect("get counted"),
        counted
    );
}

/// A second process beginning the same attempt loses: `Conflict`, nothing
/// changes; a sent notification cannot begin another; an unknown id is
/// `NotFound`.
pub async fn begin_attempt_is_a_compare_and_set<S>(store: &S)
where
    S: NotificationStore + ?Sized,
{
    let user = fresh_user("alice");
    let n = notification(&user, 0);
    store.record(&n).await.expect("record");
    let won = store.begin_attempt(n.id, 0, at(1)).await.expect("begin");
    assert_conflict(
        store.begin_attempt(n.id, 0, at(2)).await,
        "the same attempt again",
    );
    assert_conflict(store.begin_attempt(n.id, 5, at(2)).await, "a stale count");
    assert_eq!(
        NotificationStore::get_notification(store, &user, n.id)
            .await
            .expect("get"),
        won,
        "a lost race changes nothing"
    );

    store
        .record_attempt(&attempt(&won, 1, AttemptOutcome::Sent, 1))
        .await
        .expect("sent");
    assert_conflict(
        store.begin_attempt(n.id, 1, at(3)).await,
        "a sent notification",
    );
    assert_not_found(
        store.begin_attempt(Uuid::now_v7(), 0, at(0)).await,
        "begin_attempt of an unknown id",
    );
}

/// `record_attempt` logs the attempt and sets the status from its outcome;
/// `list_attempts` gives every attempt back in order.
pub async fn record_attempt_logs_it_and_sets_the_status<S>(store: &S)
where
    S: NotificationStore + ?Sized,
{
    let user = fresh_user("alice");
    let mut n = notification(&user, 0);
    n.kind = NotificationKind::Email;
    store.record(&n).await.expect("record");
    assert_eq!(
        store.list_attempts(&user, n.id).await.expect("no attempts"),
        vec![]
    );

    let sending = store.begin_attempt(n.id, 0, at(1)).await.expect("begin 1");
    let failed = attempt(&sending, 1, AttemptOutcome::Failed, 1)
        .with_error("451 try again later")
        .with_duration(std::time::Duration::from_millis(30));
    let updated = store.record_attempt(&failed).await.expect("failed");
    assert_eq!(updated.status, NotificationStatus::Failed);
    assert_eq!(updated.error.as_deref(), Some("451 try again later"));
    assert_eq!(updated.attempts, 1);

    let sending = store.begin_attempt(n.id, 1, at(10)).await.expect("begin 2");
    let sent = attempt(&sending, 2, AttemptOutcome::Sent, 10)
        .with_duration(std::time::Duration::from_millis(1500));
    let updated = store.record_attempt(&sent).await.expect("sent");
    assert_eq!(updated.status, NotificationStatus::Sent);
    assert_eq!(updated.error, None, "a success clears the last error");
    assert_eq!(
        updated.sent_at,
        Some(at(10) + chrono::Duration::milliseconds(1500)),
        "sent_at is the end of the attempt that succeeded"
    );
    assert_eq!(
        NotificationStore::get_notification(store, &user, n.id)
            .await
            .expect("get"),
        updated,
        "record_attempt returns what is stored"
    );
    assert_eq!(
        store.list_attempts(&user, n.id).await.expect("attempts"),
        vec![failed, sent]
    );
}

/// A slow process reporting attempt 1 after attempt 2 began: its failure or
/// unknown changes nothing, its success does (the message arrived); once sent,
/// nothing changes the status. Every report is logged.
pub async fn a_late_report_of_an_older_attempt_never_overwrites_the_latest<S>(store: &S)
where
    S: NotificationStore + ?Sized,
{
    let user = fresh_user("alice");
    let n = notification(&user, 0);
    store.record(&n).await.expect("record");
    let first = store.begin_attempt(n.id, 0, at(1)).await.expect("begin 1");
    let unknown = store
        .record_attempt(&attempt(&first, 1, AttemptOutcome::Unknown, 1).with_error("interrupted"))
        .await
        .expect("unknown");
    assert_eq!(unknown.status, NotificationStatus::Unknown);
    let second = store.begin_attempt(n.id, 1, at(2)).await.expect("begin 2");

    let late = store
        .record_attempt(&attempt(&first, 1, AttemptOutcome::Failed, 1).with_error("late"))
        .await
        .expect("late failure");
    assert_eq!(
        late.status,
        NotificationStatus::Sending,
        "attempt 2 is still on"
    );
    assert_eq!(late.error.as_deref(), Some("interrupted"));

    let late = store
        .record_attempt(&attempt(&first, 1, AttemptOutcome::Sent, 1))
        .await
        .expect("late success");
    assert_eq!(late.status, NotificationStatus::Sent);
    let after = store
        .record_attempt(&attempt(&second, 2, AttemptOutcome::Failed, 2).with_error("dup"))
        .await
        .expect("failure after success");
    assert_eq!(after.status, NotificationStatus::Sent, "sent stays sent");
    assert_eq!((after.error, after.sent_at), (None, Some(at(1))));

    let log = store.list_attempts(&user, n.id).await.expect("attempts");
    let outcomes: Vec<(u32, AttemptOutcome)> = log.iter().map(|a| (a.number, a.outcome)).collect();
    assert_eq!(outcomes.len(), 4, "every report is logged: {outcomes:?}");
    assert_eq!(
        outcomes.iter().filter(|(number, _)| *number == 1).count(),
        3
    );
    assert_eq!(log.last().map(|a| a.number), Some(2));
}

/// Another user's notification's attempts are `NotFound`; an attempt of an
/// unknown notification is `NotFound` and logs nothing; deleting or purging a
/// notification deletes its attempts.
pub async fn attempts_are_the_users_own_and_go_with_their_notification<S>(store: &S)
where
    S: NotificationStore + ?Sized,
{
    let alice = fresh_user("alice");
    let bob = fresh_user("bob");
    let n = notification(&alice, 0);
    store.record(&n).await.expect("record");
    let sending = store.begin_attempt(n.id, 0, at(1)).await.expect("begin");
    store
        .record_attempt(&attempt(&sending, 1, AttemptOutcome::Sent, 1))
        .await
        .expect("sent");
    assert_not_found(
        store.list_attempts(&bob, n.id).await,
        "bob reading alice's attempts",
    );
    let stray = notification(&alice, 0);
    assert_not_found(
        store
            .record_attempt(&attempt(&stray, 1, AttemptOutcome::Sent, 1))
            .await,
        "an attempt of an unknown notification",
    );

    store.delete(&alice, n.id).await.expect("delete");
    assert_not_found(
        store.list_attempts(&alice, n.id).await,
        "attempts after delete",
    );
    // A new notification under the same id (a restore) starts with no attempts.
    store.record(&n).await.expect("record again");
    assert_eq!(
        store.list_attempts(&alice, n.id).await.expect("fresh"),
        vec![]
    );

    let sending = store.begin_attempt(n.id, 0, at(2)).await.expect("begin");
    store
        .record_attempt(&attempt(&sending, 1, AttemptOutcome::Failed, 2))
        .await
        .expect("failed");
    assert_eq!(store.purge_older_than(at(1)).await.expect("purge"), 1);
    store.record(&n).await.expect("record after purge");
    assert_eq!(
        store
            .list_attempts(&alice, n.id)
            .await
            .expect("after purge"),
        vec![],
        "purging a notification purges its attempts"
    );
}
