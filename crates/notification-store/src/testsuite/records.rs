//! `record`, `record_batch`, `get_notification`, idempotency keys and `update_status`.

use messaging_model::{Notification, NotificationKind, NotificationStatus};
use serde_json::json;
use uuid::Uuid;

use crate::{InboxQuery, NotificationStore, StatusUpdate};

use super::fixtures::*;

/// Every field recorded comes back from `get`.
pub async fn record_then_get_returns_the_same_notification<S>(store: &S)
where
    S: NotificationStore + ?Sized,
{
    let user = fresh_user("alice");
    let mut n = Notification::new(&user, NotificationKind::Email, "Receipt", "You paid 10")
        .with_idempotency_key("order-42")
        .with_metadata(json!({"to": "alice@example.com", "attempt": 1, "tags": ["a", "b"]}));
    n.created_at = micros(n.created_at);
    store.record(&n).await.expect("record");

    let stored = NotificationStore::get_notification(store, &user, n.id)
        .await
        .expect("get");
    assert_eq!(stored, n);
    assert_eq!(stored.status, NotificationStatus::Pending);
    assert_eq!((stored.attempts, stored.last_attempt_at), (0, None));
    assert!(!stored.is_read);
}

/// Metadata nested deeper than `MAX_JSON_DEPTH` is `InvalidInput`, from
/// `record` and `record_batch` (which then stores none of its rows); at the
/// limit it is stored.
pub async fn metadata_nested_past_the_limit_is_refused_and_nothing_stored<S>(store: &S)
where
    S: NotificationStore + ?Sized,
{
    let nested = |depth: usize| {
        let mut value = json!(1);
        for _ in 0..depth {
            value = json!([value]);
        }
        value
    };
    let user = fresh_user("alice");
    let at_limit = notification(&user, 0).with_metadata(nested(messaging_model::MAX_JSON_DEPTH));
    store.record(&at_limit).await.expect("at the limit");
    let deep = notification(&user, 1).with_metadata(nested(messaging_model::MAX_JSON_DEPTH + 1));
    assert_invalid_input(store.record(&deep).await, "record of deep metadata");
    let fine = notification(&user, 2);
    assert_invalid_input(
        store.record_batch(&[fine.clone(), deep.clone()]).await,
        "record_batch holding deep metadata",
    );
    assert_not_found(
        NotificationStore::get_notification(store, &user, fine.id).await,
        "the batch's other row",
    );
    assert_not_found(
        NotificationStore::get_notification(store, &user, deep.id).await,
        "the deep row",
    );
    let page = store
        .list_for_user(&user, &InboxQuery::default())
        .await
        .expect("list");
    assert_eq!(ids(&page), vec![at_limit.id]);
}

/// `get` of an id never recorded is `NotFound`.
pub async fn get_of_an_unknown_id_is_not_found<S>(store: &S)
where
    S: NotificationStore + ?Sized,
{
    let user = fresh_user("alice");
    assert_not_found(
        NotificationStore::get_notification(store, &user, Uuid::now_v7()).await,
        "get of an unknown id",
    );
}

/// Recording a second notification with a taken id is a `Conflict`, and the first
/// one is unchanged.
pub async fn recording_an_existing_id_is_a_conflict<S>(store: &S)
where
    S: NotificationStore + ?Sized,
{
    let user = fresh_user("alice");
    let first = notification(&user, 0);
    store.record(&first).await.expect("record");

    let mut second = notification(&user, 10);
    second.id = first.id;
    second.title = "Another title".into();
    assert_conflict(store.record(&second).await, "record of a taken id");

    let stored = NotificationStore::get_notification(store, &user, first.id)
        .await
        .expect("get");
    assert_eq!(stored, first);
}

/// An idempotency key is unique per user: the same user reusing it is a
/// `Conflict`, another user may use it, and each user finds their own.
pub async fn idempotency_key_is_unique_per_user<S>(store: &S)
where
    S: NotificationStore + ?Sized,
{
    let alice = fresh_user("alice");
    let bob = fresh_user("bob");
    let first = notification(&alice, 0).with_idempotency_key("welcome");
    store.record(&first).await.expect("record");

    let again = notification(&alice, 1).with_idempotency_key("welcome");
    assert_conflict(store.record(&again).await, "same user, same key");
    assert_not_found(
        NotificationStore::get_notification(store, &alice, again.id).await,
        "the conflicting notification is not stored",
    );

    let bobs = notification(&bob, 2).with_idempotency_key("welcome");
    store
        .record(&bobs)
        .await
        .expect("another user may use the key");

    let found = store
        .find_by_idempotency_key(&alice, "welcome")
        .await
        .expect("find alice's");
    assert_eq!(found.map(|n| n.id), Some(first.id));
    let found = store
        .find_by_idempotency_key(&bob, "welcome")
        .await
        .expect("find bob's");
    assert_eq!(found.map(|n| n.id), Some(bobs.id));
    let missing = store
        .find_by_idempotency_key(&alice, "never-used")
        .await
        .expect("find unknown key");
    assert_eq!(missing, None);
}

/// A batch is stored whole.
pub async fn record_batch_stores_every_notification<S>(store: &S)
where
    S: NotificationStore + ?Sized,
{
    let alice = fresh_user("alice");
    let bob = fresh_user("bob");
    let mut batch: Vec<Notification> = (0..5).map(|i| notification(&alice, i)).collect();
    batch.push(notification(&bob, 7).with_idempotency_key("k1"));
    batch[1].kind = NotificationKind::Sms;
    batch[2].metadata = json!({"deep": {"nested": [1, 2, 3]}});
    batch[3].idempotency_key = Some("k1".into());
    store.record_batch(&batch).await.expect("record_batch");

    for n in &batch {
        let stored = NotificationStore::get_notification(store, &n.user_id, n.id)
            .await
            .expect("get");
        assert_eq!(&stored, n);
    }
    assert_eq!(store.unread_count(&alice).await.expect("count"), 5);
    assert_eq!(store.unread_count(&bob).await.expect("count"), 1);
}

/// A batch holding one conflicting notification (a taken idempotency key, or an id
/// twice in the batch) is a `Conflict` and stores nothing.
pub async fn record_batch_with_a_conflict_stores_nothing<S>(store: &S)
where
    S: NotificationStore + ?Sized,
{
    let user = fresh_user("alice");
    let existing = notification(&user, 0).with_idempotency_key("taken");
    store.record(&existing).await.expect("record");

    let batch = vec![
        notification(&user, 1),
        notification(&user, 2).with_idempotency_key("taken"),
        notification(&user, 3),
    ];
    assert_conflict(store.record_batch(&batch).await, "batch with a taken key");

    let twice = notification(&user, 4);
    let batch = vec![notification(&user, 5), twice.clone(), twice];
    assert_conflict(store.record_batch(&batch).await, "batch with an id twice");

    let page = store
        .list_for_user(&user, &InboxQuery::default())
        .await
        .expect("list");
    assert_eq!(
        ids(&page),
        vec![existing.id],
        "nothing of either batch is stored"
    );
}

/// An empty batch succeeds and stores nothing.
pub async fn record_batch_of_nothing_is_a_no_op<S>(store: &S)
where
    S: NotificationStore + ?Sized,
{
    store.record_batch(&[]).await.expect("empty batch");
}

/// `Sent` sets the status and `sent_at`; the rest is unchanged.
pub async fn update_status_to_sent_sets_sent_at<S>(store: &S)
where
    S: NotificationStore + ?Sized,
{
    let user = fresh_user("alice");
    let n = notification(&user, 0);
    store.record(&n).await.expect("record");

    let updated = store
        .update_status(n.id, StatusUpdate::Sent { at: at(5) })
        .await
        .expect("update_status");
    assert_eq!(updated.status, NotificationStatus::Sent);
    assert_eq!(updated.sent_at, Some(at(5)));
    assert_eq!(
        (updated.id, &updated.title, updated.created_at),
        (n.id, &n.title, n.created_at)
    );
    let stored = NotificationStore::get_notification(store, &user, n.id)
        .await
        .expect("get");
    assert_eq!(stored, updated, "update_status returns what is stored");
}

/// `Failed` sets the status and the error.
pub async fn update_status_to_failed_records_the_error<S>(store: &S)
where
    S: NotificationStore + ?Sized,
{
    let user = fresh_user("alice");
    let n = notification(&user, 0);
    store.record(&n).await.expect("record");

    let updated = store
        .update_status(
            n.id,
            StatusUpdate::Failed {
                error: "mailbox full".into(),
            },
        )
        .await
        .expect("update_status");
    assert_eq!(updated.status, NotificationStatus::Failed);
    assert_eq!(updated.error.as_deref(), Some("mailbox full"));
    assert_eq!(updated.sent_at, None);
    let stored = NotificationStore::get_notification(store, &user, n.id)
        .await
        .expect("get");
    assert_eq!(stored, updated, "update_status returns what is stored");
}

/// `update_status` of an id never recorded is `NotFound`.
pub async fn update_status_of_an_unknown_id_is_not_found<S>(store: &S)
where
    S: NotificationStore + ?Sized,
{
    assert_not_found(
        store
            .update_status(Uuid::now_v7(), StatusUpdate::Sent { at: at(0) })
            .await,
        "update_status of an unknown id",
    );
}
