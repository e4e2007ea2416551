//! `list_for_user`: order, paging with cursors, filters and page sizes.

use chrono::{TimeZone, Utc};
use messaging_model::{Notification, NotificationKind};
use uuid::Uuid;

use crate::{InboxCursor, InboxQuery, MAX_PAGE_SIZE, NotificationStore, StoreError};

use super::fixtures::*;

/// The inbox holds the user's notifications only, newest first whatever the
/// recording order.
pub async fn inbox_lists_the_users_notifications_newest_first<S>(store: &S)
where
    S: NotificationStore + ?Sized,
{
    let alice = fresh_user("alice");
    let bob = fresh_user("bob");
    let mine: Vec<Notification> = [30, 10, 50, 20, 40]
        .iter()
        .map(|s| notification(&alice, *s))
        .collect();
    record_all(store, &mine).await;
    record_all(store, &[notification(&bob, 35), notification(&bob, 60)]).await;

    let page = store
        .list_for_user(&alice, &InboxQuery::default())
        .await
        .expect("list");
    assert_eq!(ids(&page), inbox_order(&mine));
    assert_eq!(page.next_cursor, None);
    let created: Vec<_> = page.items.iter().map(|n| n.created_at).collect();
    assert_eq!(created, vec![at(50), at(40), at(30), at(20), at(10)]);

    let empty = store
        .list_for_user(&fresh_user("nobody"), &InboxQuery::default())
        .await
        .expect("list of an unknown user");
    assert!(empty.items.is_empty());
    assert_eq!(empty.next_cursor, None);
}

/// Keyset pages of 3 over rows sharing `created_at` (ties broken by id) cover
/// every row once, in inbox order.
pub async fn inbox_pages_through_ties_on_created_at_without_gaps_or_repeats<S>(store: &S)
where
    S: NotificationStore + ?Sized,
{
    let user = fresh_user("alice");
    let mut all: Vec<Notification> = (0..7).map(|_| notification(&user, 100)).collect();
    all.extend((0..4).map(|i| notification(&user, 200 + i)));
    all.extend((0..3).map(|_| notification(&user, 50)));
    // Record in an order unrelated to ids or times.
    let mut shuffled = all.clone();
    shuffled.reverse();
    shuffled.rotate_left(5);
    store.record_batch(&shuffled).await.expect("record_batch");

    let pages = all_pages(store, &user, InboxQuery::default().with_limit(3)).await;
    assert_eq!(flatten(&pages), inbox_order(&all));
    assert_eq!(pages.len(), 5, "14 rows in pages of 3");
}

/// Paging with cursors passed through [`InboxCursor::encode`] and
/// [`InboxCursor::decode`] works when `created_at` has nanoseconds: the store keeps
/// timestamps to the microsecond, as the cursor does.
pub async fn inbox_paging_with_encoded_cursors_keeps_microsecond_precision<S>(store: &S)
where
    S: NotificationStore + ?Sized,
{
    let user = fresh_user("alice");
    let mut all = Vec::new();
    for i in 0..6_u32 {
        let mut n = notification(&user, 0);
        // Two rows per microsecond, with nanoseconds the cursor cannot carry.
        n.created_at +=
            chrono::Duration::nanoseconds(i64::from(i / 2) * 1000 + i64::from(i) * 7 + 1);
        all.push(n);
    }
    record_all(store, &all).await;

    let stored = NotificationStore::get_notification(store, &user, all[0].id)
        .await
        .expect("get");
    assert_eq!(
        stored.created_at,
        micros(all[0].created_at),
        "kept to the microsecond"
    );

    let mut seen = Vec::new();
    let mut encoded: Option<String> = None;
    for _ in 0..10 {
        let mut query = InboxQuery::default().with_limit(2);
        if let Some(text) = &encoded {
            query = query.with_cursor(InboxCursor::decode(text).expect("decode own cursor"));
        }
        let page = store.list_for_user(&user, &query).await.expect("list");
        seen.extend(ids(&page));
        match page.next_cursor {
            Some(cursor) => encoded = Some(cursor.encode()),
            None => break,
        }
    }
    let mut truncated = all.clone();
    for n in &mut truncated {
        n.created_at = micros(n.created_at);
    }
    assert_eq!(seen, inbox_order(&truncated));
}

/// A page that reaches the last row has no next cursor, even when it is full.
pub async fn page_holding_the_last_row_has_no_next_cursor<S>(store: &S)
where
    S: NotificationStore + ?Sized,
{
    let user = fresh_user("alice");
    let all: Vec<Notification> = (0..4).map(|i| notification(&user, i)).collect();
    record_all(store, &all).await;

    let page = store
        .list_for_user(&user, &InboxQuery::default().with_limit(4))
        .await
        .expect("list");
    assert_eq!(page.items.len(), 4);
    assert_eq!(page.next_cursor, None);

    let first = store
        .list_for_user(&user, &InboxQuery::default().with_limit(2))
        .await
        .expect("list");
    let cursor = first.next_cursor.expect("more rows follow");
    let second = store
        .list_for_user(
            &user,
            &InboxQuery::default().with_limit(2).with_cursor(cursor),
        )
        .await
        .expect("list");
    assert_eq!(second.items.len(), 2);
    assert_eq!(second.next_cursor, None);
}

/// The kind filter keeps only that channel.
pub async fn inbox_filters_by_kind<S>(store: &S)
where
    S: NotificationStore + ?Sized,
{
    let user = fresh_user("alice");
    let kinds = [
        NotificationKind::Email,
        NotificationKind::Sms,
        NotificationKind::Push,
        NotificationKind::System,
        NotificationKind::Email,
    ];
    let all: Vec<Notification> = kinds
        .iter()
        .enumerate()
        .map(|(i, kind)| {
            let mut n = notification(&user, i as i64);
            n.kind = *kind;
            n
        })
        .collect();
    record_all(store, &all).await;

    for kind in [
        NotificationKind::Email,
        NotificationKind::Sms,
        NotificationKind::Push,
        NotificationKind::System,
    ] {
        let page = store
            .list_for_user(&user, &InboxQuery::default().with_kind(kind))
            .await
            .expect("list");
        let expected: Vec<Notification> = all.iter().filter(|n| n.kind == kind).cloned().collect();
        assert_eq!(ids(&page), inbox_order(&expected), "kind {kind:?}");
    }
}

/// The unread filter keeps only unread notifications.
pub async fn inbox_filters_unread_only<S>(store: &S)
where
    S: NotificationStore + ?Sized,
{
    let user = fresh_user("alice");
    let all: Vec<Notification> = (0..6).map(|i| notification(&user, i)).collect();
    record_all(store, &all).await;
    for n in all.iter().step_by(2) {
        store.mark_read(&user, n.id).await.expect("mark_read");
    }

    let page = store
        .list_for_user(&user, &InboxQuery::default().unread_only())
        .await
        .expect("list");
    let unread: Vec<Notification> = all.iter().skip(1).step_by(2).cloned().collect();
    assert_eq!(ids(&page), inbox_order(&unread));
    assert!(page.items.iter().all(|n| !n.is_read && n.read_at.is_none()));
}

/// The since filter keeps notifications created at or after the instant.
pub async fn inbox_filters_since_inclusive<S>(store: &S)
where
    S: NotificationStore + ?Sized,
{
    let user = fresh_user("alice");
    let all: Vec<Notification> = (0..6).map(|i| notification(&user, i * 10)).collect();
    record_all(store, &all).await;

    let page = store
        .list_for_user(&user, &InboxQuery::default().with_since(at(30)))
        .await
        .expect("list");
    let created: Vec<_> = page.items.iter().map(|n| n.created_at).collect();
    assert_eq!(created, vec![at(50), at(40), at(30)]);
}

/// Kind, unread and since together, paged by 2, give exactly the matching rows.
pub async fn inbox_filters_combine_with_paging<S>(store: &S)
where
    S: NotificationStore + ?Sized,
{
    let user = fresh_user("alice");
    let mut all = Vec::new();
    for i in 0..24_i64 {
        let mut n = notification(&user, i);
        n.kind = if i % 3 == 0 {
            NotificationKind::Push
        } else {
            NotificationKind::Email
        };
        all.push(n);
    }
    store.record_batch(&all).await.expect("record_batch");
    for n in all.iter().filter(|n| n.created_at.timestamp() % 4 == 0) {
        store.mark_read(&user, n.id).await.expect("mark_read");
    }

    let query = InboxQuery::default()
        .with_kind(NotificationKind::Email)
        .unread_only()
        .with_since(at(5))
        .with_limit(2);
    let pages = all_pages(store, &user, query).await;
    let expected: Vec<Notification> = all
        .iter()
        .filter(|n| n.kind == NotificationKind::Email)
        .filter(|n| n.created_at.timestamp() % 4 != 0)
        .filter(|n| n.created_at >= at(5))
        .cloned()
        .collect();
    assert!(expected.len() > 4, "the filters leave several pages");
    assert_eq!(flatten(&pages), inbox_order(&expected));
}

/// A page size of 0 or above [`MAX_PAGE_SIZE`] is `InvalidInput`; the maximum works.
pub async fn inbox_rejects_page_size_zero_and_above_maximum<S>(store: &S)
where
    S: NotificationStore + ?Sized,
{
    let user = fresh_user("alice");
    store.record(&notification(&user, 0)).await.expect("record");
    for limit in [0, MAX_PAGE_SIZE + 1, u32::MAX] {
        assert_invalid_input(
            store
                .list_for_user(&user, &InboxQuery::default().with_limit(limit))
                .await,
            &format!("page size {limit}"),
        );
    }
    let page = store
        .list_for_user(&user, &InboxQuery::default().with_limit(MAX_PAGE_SIZE))
        .await
        .expect("the maximum page size");
    assert_eq!(page.items.len(), 1);
}

/// Cursor strings a client could send that are not cursors are `InvalidInput`.
pub async fn malformed_cursor_strings_are_rejected<S>(_store: &S)
where
    S: NotificationStore + ?Sized,
{
    let id = Uuid::now_v7().simple().to_string();
    for text in [
        String::new(),
        "garbage".to_owned(),
        ".".to_owned(),
        format!("12x.{id}"),
        "1700000000000000.not-a-uuid".to_owned(),
        format!("{}.{id}", i64::MAX),
        format!("1700000000000000{id}"),
    ] {
        assert_invalid_input(InboxCursor::decode(&text), &format!("cursor {text:?}"));
    }
}

/// Well-formed cursors and `since` values far in the past or future are answered
/// with a page (or `InvalidInput` where the database cannot represent the instant),
/// never another error or a panic.
pub async fn cursor_far_outside_the_stored_range_is_answered_without_error_or_panic<S>(store: &S)
where
    S: NotificationStore + ?Sized,
{
    let user = fresh_user("alice");
    let all: Vec<Notification> = (0..3).map(|i| notification(&user, i)).collect();
    record_all(store, &all).await;

    let year = |y: i32| {
        Utc.with_ymd_and_hms(y, 1, 1, 0, 0, 0)
            .single()
            .expect("date")
    };
    // (cursor instant, rows expected when the store answers with a page)
    for (instant, expected) in [
        (year(1), 0),
        (year(9999), 3),
        (year(-200_000), 0),
        (year(200_000), 3),
    ] {
        let cursor = InboxCursor {
            created_at: instant,
            id: Uuid::nil(),
        };
        let decoded = InboxCursor::decode(&cursor.encode()).expect("encodable");
        match store
            .list_for_user(&user, &InboxQuery::default().with_cursor(decoded))
            .await
        {
            Ok(page) => assert_eq!(page.items.len(), expected, "cursor at {instant}"),
            Err(StoreError::InvalidInput { .. }) => {}
            Err(other) => panic!("cursor at {instant}: {other:?}"),
        }
        match store
            .list_for_user(&user, &InboxQuery::default().with_since(instant))
            .await
        {
            Ok(page) => assert_eq!(page.items.len(), 3 - expected, "since {instant}"),
            Err(StoreError::InvalidInput { .. }) => {}
            Err(other) => panic!("since {instant}: {other:?}"),
        }
    }
}
