//! One user can neither see nor touch another's notifications.

use messaging_model::{Notification, NotificationKind};
use uuid::Uuid;

use crate::{InboxCursor, InboxQuery, MAX_PAGE_SIZE, NotificationStore};

use super::fixtures::*;

/// Records a notification of `bob` with an idempotency key, returning it.
async fn bobs_notification<S: NotificationStore + ?Sized>(store: &S, bob: &str) -> Notification {
    let n = notification(bob, 0).with_idempotency_key("bobs-key");
    store.record(&n).await.expect("record bob's");
    n
}

/// As Alice, `get` of Bob's id is `NotFound` (as for a missing id) and his
/// idempotency key finds nothing.
pub async fn another_users_notification_cannot_be_read<S>(store: &S)
where
    S: NotificationStore + ?Sized,
{
    let alice = fresh_user("alice");
    let bob = fresh_user("bob");
    let bobs = bobs_notification(store, &bob).await;

    let theirs = NotificationStore::get_notification(store, &alice, bobs.id).await;
    let missing = NotificationStore::get_notification(store, &alice, Uuid::now_v7()).await;
    assert_not_found(theirs, "get of another user's id");
    assert_not_found(missing, "get of a missing id");
    assert_eq!(
        store
            .find_by_idempotency_key(&alice, "bobs-key")
            .await
            .expect("find"),
        None
    );
}

/// As Alice, marking Bob's notification read or unread is `NotFound` and changes
/// nothing of his.
pub async fn another_users_notification_cannot_be_marked_read_or_unread<S>(store: &S)
where
    S: NotificationStore + ?Sized,
{
    let alice = fresh_user("alice");
    let bob = fresh_user("bob");
    let unread = bobs_notification(store, &bob).await;
    let read = notification(&bob, 1);
    store.record(&read).await.expect("record");
    store.mark_read(&bob, read.id).await.expect("bob reads it");
    let read = NotificationStore::get_notification(store, &bob, read.id)
        .await
        .expect("get");

    assert_not_found(
        store.mark_read(&alice, unread.id).await,
        "mark_read of another's",
    );
    assert_not_found(
        store.mark_unread(&alice, read.id).await,
        "mark_unread of another's",
    );

    assert_eq!(
        NotificationStore::get_notification(store, &bob, unread.id)
            .await
            .expect("get"),
        unread
    );
    assert_eq!(
        NotificationStore::get_notification(store, &bob, read.id)
            .await
            .expect("get"),
        read
    );
    assert_eq!(store.unread_count(&bob).await.expect("count"), 1);
    assert_eq!(store.unread_count(&alice).await.expect("count"), 0);
}

/// As Alice, deleting Bob's notification is `NotFound` and it stays.
pub async fn another_users_notification_cannot_be_deleted<S>(store: &S)
where
    S: NotificationStore + ?Sized,
{
    let alice = fresh_user("alice");
    let bob = fresh_user("bob");
    let bobs = bobs_notification(store, &bob).await;

    assert_not_found(store.delete(&alice, bobs.id).await, "delete of another's");
    assert_eq!(
        NotificationStore::get_notification(store, &bob, bobs.id)
            .await
            .expect("get"),
        bobs
    );
}

/// Alice's `mark_all_read` leaves Bob's notifications unread.
pub async fn mark_all_read_touches_only_the_callers_notifications<S>(store: &S)
where
    S: NotificationStore + ?Sized,
{
    let alice = fresh_user("alice");
    let bob = fresh_user("bob");
    record_all(store, &[notification(&alice, 0), notification(&alice, 1)]).await;
    let bobs: Vec<Notification> = (0..3).map(|i| notification(&bob, i)).collect();
    record_all(store, &bobs).await;

    assert_eq!(store.mark_all_read(&alice).await.expect("mark_all_read"), 2);
    assert_eq!(store.unread_count(&bob).await.expect("count"), 3);
    for n in &bobs {
        assert_eq!(
            &NotificationStore::get_notification(store, &bob, n.id)
                .await
                .expect("get"),
            n
        );
    }
}

/// As Alice, listing with a cursor taken from Bob's inbox, and with every filter
/// matching Bob's rows, returns Alice's rows only.
pub async fn listing_with_another_users_cursor_and_filters_reveals_nothing_of_theirs<S>(store: &S)
where
    S: NotificationStore + ?Sized,
{
    let alice = fresh_user("alice");
    let bob = fresh_user("bob");
    let mut bobs: Vec<Notification> = (0..5).map(|i| notification(&bob, i * 10)).collect();
    for n in &mut bobs {
        n.kind = NotificationKind::Sms;
    }
    record_all(store, &bobs).await;
    let alices: Vec<Notification> = (0..3).map(|i| notification(&alice, i * 10 + 5)).collect();
    record_all(store, &alices).await;

    let bobs_cursor = InboxCursor::after(&bobs[4]);
    let queries = [
        InboxQuery::default(),
        InboxQuery::default().with_cursor(bobs_cursor),
        InboxQuery::default().with_kind(NotificationKind::Sms),
        InboxQuery::default().unread_only().with_since(at(0)),
        InboxQuery::default()
            .with_kind(NotificationKind::Sms)
            .unread_only()
            .with_since(at(0))
            .with_cursor(bobs_cursor)
            .with_limit(MAX_PAGE_SIZE),
    ];
    for query in queries {
        let page = store.list_for_user(&alice, &query).await.expect("list");
        assert!(
            page.items.iter().all(|n| n.user_id == alice),
            "{query:?} revealed another user's notification"
        );
        assert!(
            page.items
                .iter()
                .all(|n| !bobs.iter().any(|b| b.id == n.id)),
            "{query:?} revealed another user's id"
        );
    }
    let cursor_page = store
        .list_for_user(&alice, &InboxQuery::default().with_cursor(bobs_cursor))
        .await
        .expect("list");
    assert_eq!(
        ids(&cursor_page),
        inbox_order(&alices),
        "the cursor only positions the page"
    );
    assert_eq!(store.unread_count(&alice).await.expect("count"), 3);
}
