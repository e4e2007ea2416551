//! `unread_count`, `mark_read`, `mark_unread`, `mark_all_read`, `delete` and `purge_older_than`.

use messaging_model::Notification;
use uuid::Uuid;

use crate::{InboxQuery, NotificationStore};

use super::fixtures::*;

/// The unread count counts the user's unread notifications only.
pub async fn unread_count_counts_only_unread<S>(store: &S)
where
    S: NotificationStore + ?Sized,
{
    let user = fresh_user("alice");
    assert_eq!(store.unread_count(&user).await.expect("count"), 0);
    let all: Vec<Notification> = (0..5).map(|i| notification(&user, i)).collect();
    record_all(store, &all).await;
    let mut already_read = notification(&user, 9);
    already_read.is_read = true;
    already_read.read_at = Some(at(10));
    store
        .record(&already_read)
        .await
        .expect("record a read one");
    assert_eq!(store.unread_count(&user).await.expect("count"), 5);

    store.mark_read(&user, all[0].id).await.expect("mark_read");
    store.mark_read(&user, all[1].id).await.expect("mark_read");
    assert_eq!(store.unread_count(&user).await.expect("count"), 3);
}

/// `mark_read` sets `is_read` and `read_at`; `mark_unread` clears both; repeating
/// either changes nothing and succeeds.
pub async fn mark_read_sets_read_at_and_mark_unread_clears_it<S>(store: &S)
where
    S: NotificationStore + ?Sized,
{
    let user = fresh_user("alice");
    let n = notification(&user, 0);
    store.record(&n).await.expect("record");

    store.mark_read(&user, n.id).await.expect("mark_read");
    let read = NotificationStore::get_notification(store, &user, n.id)
        .await
        .expect("get");
    assert!(read.is_read);
    let read_at = read.read_at.expect("read_at is set");
    assert!(read_at > at(0), "read_at is set by the store");

    store.mark_read(&user, n.id).await.expect("mark_read again");
    let again = NotificationStore::get_notification(store, &user, n.id)
        .await
        .expect("get");
    assert!(again.is_read);
    assert_eq!(again.read_at, Some(read_at), "the first read time is kept");

    store.mark_unread(&user, n.id).await.expect("mark_unread");
    let unread = NotificationStore::get_notification(store, &user, n.id)
        .await
        .expect("get");
    assert!(!unread.is_read);
    assert_eq!(unread.read_at, None);
    assert_eq!(store.unread_count(&user).await.expect("count"), 1);
    store
        .mark_unread(&user, n.id)
        .await
        .expect("mark_unread again");

    assert_not_found(
        store.mark_read(&user, Uuid::now_v7()).await,
        "mark_read of an unknown id",
    );
    assert_not_found(
        store.mark_unread(&user, Uuid::now_v7()).await,
        "mark_unread of an unknown id",
    );
}

/// `mark_all_read` marks every unread notification and returns how many changed.
pub async fn mark_all_read_marks_every_unread_and_reports_how_many<S>(store: &S)
where
    S: NotificationStore + ?Sized,
{
    let user = fresh_user("alice");
    let all: Vec<Notification> = (0..6).map(|i| notification(&user, i)).collect();
    record_all(store, &all).await;
    store.mark_read(&user, all[2].id).await.expect("mark_read");
    let kept_read_at = NotificationStore::get_notification(store, &user, all[2].id)
        .await
        .expect("get")
        .read_at;

    assert_eq!(store.mark_all_read(&user).await.expect("mark_all_read"), 5);
    assert_eq!(store.unread_count(&user).await.expect("count"), 0);
    let page = store
        .list_for_user(&user, &InboxQuery::default())
        .await
        .expect("list");
    assert!(page.items.iter().all(|n| n.is_read && n.read_at.is_some()));
    let earlier = page
        .items
        .iter()
        .find(|n| n.id == all[2].id)
        .expect("present");
    assert_eq!(
        earlier.read_at, kept_read_at,
        "already read rows keep their read_at"
    );

    assert_eq!(store.mark_all_read(&user).await.expect("again"), 0);
    assert_eq!(
        store
            .mark_all_read(&fresh_user("nobody"))
            .await
            .expect("unknown user"),
        0
    );
}

/// `delete` removes that notification only; deleting it again is `NotFound`.
pub async fn delete_removes_only_that_notification<S>(store: &S)
where
    S: NotificationStore + ?Sized,
{
    let user = fresh_user("alice");
    let all: Vec<Notification> = (0..3).map(|i| notification(&user, i)).collect();
    record_all(store, &all).await;

    store.delete(&user, all[1].id).await.expect("delete");
    assert_not_found(
        NotificationStore::get_notification(store, &user, all[1].id).await,
        "get after delete",
    );
    assert_not_found(store.delete(&user, all[1].id).await, "delete again");
    let page = store
        .list_for_user(&user, &InboxQuery::default())
        .await
        .expect("list");
    assert_eq!(ids(&page), vec![all[2].id, all[0].id]);
    assert_eq!(store.unread_count(&user).await.expect("count"), 2);
}

/// `purge_older_than` deletes every user's notifications created strictly before
/// the cutoff and returns how many.
pub async fn purge_deletes_notifications_created_before_the_cutoff<S>(store: &S)
where
    S: NotificationStore + ?Sized,
{
    let alice = fresh_user("alice");
    let bob = fresh_user("bob");
    let old = vec![
        notification(&alice, 0),
        notification(&alice, 10),
        notification(&bob, 5),
    ];
    let kept = vec![
        notification(&alice, 20),
        notification(&bob, 20),
        notification(&bob, 30),
    ];
    record_all(store, &old).await;
    record_all(store, &kept).await;

    assert_eq!(store.purge_older_than(at(20)).await.expect("purge"), 3);
    for n in &old {
        assert_not_found(
            NotificationStore::get_notification(store, &n.user_id, n.id).await,
            "purged notification",
        );
    }
    for n in &kept {
        NotificationStore::get_notification(store, &n.user_id, n.id)
            .await
            .expect("notification at or after the cutoff is kept");
    }
    assert_eq!(
        store.purge_older_than(at(20)).await.expect("purge again"),
        0
    );
}
