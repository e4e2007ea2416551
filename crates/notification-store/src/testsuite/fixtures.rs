//! What the suite's tests share: fixed instants, fresh ids, paging and assertions.

use chrono::{DateTime, TimeZone, Utc};
use messaging_model::{MessageTemplate, Notification, NotificationKind, TemplateKind};
use serde_json::json;
use uuid::Uuid;

use crate::{InboxCursor, InboxPage, InboxQuery, NotificationStore, StoreError};

/// A user id no other test uses.
pub(super) fn fresh_user(label: &str) -> String {
    format!("{label}-{}", Uuid::now_v7().simple())
}

/// A fixed instant, `seconds` after 2024-01-01T00:00:00Z.
pub(super) fn at(seconds: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0)
        .single()
        .expect("a valid fixed date")
        + chrono::Duration::seconds(seconds)
}

/// A pending, unread in-app notification for `user`, created at `at(seconds)`.
pub(super) fn notification(user: &str, seconds: i64) -> Notification {
    let mut n = Notification::new(user, NotificationKind::System, "Title", "Body");
    n.created_at = at(seconds);
    n
}

/// `timestamp` without its sub-microsecond part.
pub(super) fn micros(timestamp: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(timestamp.timestamp_micros()).expect("in range")
}

pub(super) async fn record_all<S: NotificationStore + ?Sized>(
    store: &S,
    notifications: &[Notification],
) {
    for n in notifications {
        store.record(n).await.expect("record");
    }
}

/// The ids of a page, in order.
pub(super) fn ids(page: &InboxPage) -> Vec<Uuid> {
    page.items.iter().map(|n| n.id).collect()
}

/// `notifications` in inbox order: newest first, ties by id, both descending.
pub(super) fn inbox_order(notifications: &[Notification]) -> Vec<Uuid> {
    let mut sorted: Vec<&Notification> = notifications.iter().collect();
    sorted.sort_by_key(|n| std::cmp::Reverse((n.created_at, n.id)));
    sorted.into_iter().map(|n| n.id).collect()
}

/// Every page of `user`'s inbox for `query` (whose cursor is ignored), following
/// `next_cursor`; fails the test if a page is empty but announced or paging loops.
pub(super) async fn all_pages<S: NotificationStore + ?Sized>(
    store: &S,
    user: &str,
    query: InboxQuery,
) -> Vec<InboxPage> {
    let mut pages = Vec::new();
    let mut cursor = None;
    loop {
        let mut q = query.clone();
        q.cursor = cursor;
        let page = store.list_for_user(user, &q).await.expect("list_for_user");
        assert!(
            page.items.len() <= query.limit as usize,
            "a page holds at most `limit` items"
        );
        cursor = page.next_cursor;
        let last = cursor.is_none();
        if !last {
            assert!(
                !page.items.is_empty(),
                "a page with a next cursor is not empty"
            );
            assert_eq!(
                page.next_cursor,
                page.items.last().map(InboxCursor::after),
                "next_cursor points after the page's last item"
            );
        }
        pages.push(page);
        assert!(pages.len() <= 1000, "paging does not end");
        if last {
            return pages;
        }
    }
}

pub(super) fn flatten(pages: &[InboxPage]) -> Vec<Uuid> {
    pages.iter().flat_map(ids).collect()
}

pub(super) fn template(name: &str, locale: Option<&str>) -> MessageTemplate {
    let mut t = MessageTemplate::new(name, TemplateKind::Email, "Hello {{name}}")
        .with_subject("Welcome, {{name}}")
        .with_variables(["name"]);
    t.locale = locale.map(str::to_owned);
    t.metadata = json!({"owner": "growth", "version": 1});
    t.created_at = micros(t.created_at);
    t.updated_at = t.created_at;
    t
}

/// A fresh template name.
pub(super) fn fresh_name(label: &str) -> String {
    format!("{label}_{}", Uuid::now_v7().simple())
}

pub(super) fn assert_not_found<T: std::fmt::Debug>(result: Result<T, StoreError>, what: &str) {
    match result {
        Err(error) if error.is_not_found() => {}
        other => panic!("{what}: expected NotFound, got {other:?}"),
    }
}

pub(super) fn assert_conflict<T: std::fmt::Debug>(result: Result<T, StoreError>, what: &str) {
    match result {
        Err(error) if error.is_conflict() => {}
        other => panic!("{what}: expected Conflict, got {other:?}"),
    }
}

pub(super) fn assert_invalid_input<T: std::fmt::Debug>(result: Result<T, StoreError>, what: &str) {
    match result {
        Err(StoreError::InvalidInput { .. }) => {}
        other => panic!("{what}: expected InvalidInput, got {other:?}"),
    }
}
