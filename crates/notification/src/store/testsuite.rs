//! The store conformance suite: every [`NotificationStore`] and [`TemplateStore`]
//! implementation must pass it.
//!
//! Each test is an async function taking a store by reference. A store crate turns
//! on this crate's `testsuite` feature in its dev-dependencies and stamps every test
//! out as a `#[tokio::test]` with one macro, in an integration test:
//!
//! ```ignore
//! // crates/my-store/tests/conformance.rs
//! // Cargo.toml: [dev-dependencies]
//! //   notification = { workspace = true, features = ["testsuite"] }
//! //   tokio = { workspace = true, features = ["rt-multi-thread", "macros"] }
//!
//! /// A fresh, empty store (for a database: its own schema, migrated).
//! async fn store() -> MyStore {
//!     MyStore::connect(/* own namespace */).await.unwrap()
//! }
//!
//! /// Called after every test, pass or fail: removes the store's namespace.
//! async fn teardown(store: &MyStore) {
//!     store.drop_namespace().await.unwrap();
//! }
//!
//! // One type implementing both traits:
//! notification::store_conformance_tests!(store, teardown = teardown);
//! ```
//!
//! A crate whose two stores are different types uses the two halves instead, each
//! with its own factory (`teardown = ...` is optional everywhere):
//!
//! ```ignore
//! notification::notification_store_conformance_tests!(notification_store);
//! notification::template_store_conformance_tests!(template_store);
//! ```
//!
//! The macros expand to `mod notification_store_conformance` and
//! `mod template_store_conformance` in the calling module, so `store` and
//! `teardown` may be private functions next to the invocation. The calling crate
//! needs `tokio` with the `rt-multi-thread` and `macros` features: each test runs
//! on its own two-worker runtime, and the test body runs in a spawned task so the
//! teardown runs even when an assertion fails.
//!
//! What the suite expects of a factory:
//! * every call returns an **empty** store (no notifications, no templates): the
//!   purge and list tests count rows;
//! * nothing else; tests still use fresh random user ids, so stray rows of another
//!   user never change a result.
//!
//! What it pins down beyond the trait documentation:
//! * timestamps are kept to the **microsecond** (the precision of PostgreSQL and of
//!   [`InboxCursor::encode`]): a store truncates sub-microsecond parts on record, so
//!   paging with an encoded cursor neither repeats nor skips a row;
//! * an inbox page holding the last row has `next_cursor: None`, even when it is full;
//! * a batch holding an id twice, or a key taken by a stored row, is a
//!   [`StoreError::Conflict`] and stores none of its rows;
//! * a well-formed cursor or `since` far outside the database's time range gives a
//!   page or [`StoreError::InvalidInput`], nothing else;
//! * `update_status` to `Sent` sets `sent_at`, to `Failed` sets `error`;
//! * `begin_attempt` is a compare-and-set on the attempt count; `record_attempt`
//!   applies `sent` from any attempt and `failed` / `unknown` only from the
//!   latest, and logs every attempt; attempts go when their notification goes;
//! * `mark_read` of a read notification and `mark_unread` of an unread one succeed
//!   and change nothing;
//! * template names and locales sort by byte value in `list`;
//! * a template id is unique: saving another (name, locale) under a taken id is a
//!   [`StoreError::Conflict`];
//! * saving a new template keeps its `id` and `created_at`; the store sets
//!   `updated_at` on every save and deactivation, never earlier than before.
//!
//! No test depends on the wall clock: notifications carry fixed `created_at`s, and
//! the only time assertions are "set by the store, not copied from the input" and
//! "not earlier than before".

use chrono::{DateTime, TimeZone, Utc};
use messaging_model::{
    AttemptOutcome, DeliveryAttempt, MessageTemplate, Notification, NotificationKind,
    NotificationStatus, TemplateKind,
};
use serde_json::json;
use uuid::Uuid;

use super::{
    InboxCursor, InboxPage, InboxQuery, MAX_PAGE_SIZE, NotificationStore, StatusUpdate, StoreError,
    TemplateStore,
};

/// Stamps out every test of both halves of the suite for one type implementing
/// [`NotificationStore`] and [`TemplateStore`]: see the [module docs](crate::store::testsuite).
#[macro_export]
macro_rules! store_conformance_tests {
    ($factory:path $(, teardown = $teardown:path)? $(,)?) => {
        $crate::notification_store_conformance_tests!($factory $(, teardown = $teardown)?);
        $crate::template_store_conformance_tests!($factory $(, teardown = $teardown)?);
    };
}

/// Stamps out every [`NotificationStore`] test of the suite: see the
/// [module docs](crate::store::testsuite).
#[macro_export]
macro_rules! notification_store_conformance_tests {
    ($factory:path $(, teardown = $teardown:path)? $(,)?) => {
        mod notification_store_conformance {
            #[allow(unused_imports)]
            use super::*;
            $crate::__store_conformance_each!($factory, [$($teardown)?];
                record_then_get_returns_the_same_notification,
                get_of_an_unknown_id_is_not_found,
                recording_an_existing_id_is_a_conflict,
                metadata_nested_past_the_limit_is_refused_and_nothing_stored,
                idempotency_key_is_unique_per_user,
                record_batch_stores_every_notification,
                record_batch_with_a_conflict_stores_nothing,
                record_batch_of_nothing_is_a_no_op,
                update_status_to_sent_sets_sent_at,
                update_status_to_failed_records_the_error,
                update_status_of_an_unknown_id_is_not_found,
                begin_attempt_marks_sending_and_counts_attempts,
                begin_attempt_is_a_compare_and_set,
                record_attempt_logs_it_and_sets_the_status,
                a_late_report_of_an_older_attempt_never_overwrites_the_latest,
                attempts_are_the_users_own_and_go_with_their_notification,
                inbox_lists_the_users_notifications_newest_first,
                inbox_pages_through_ties_on_created_at_without_gaps_or_repeats,
                inbox_paging_with_encoded_cursors_keeps_microsecond_precision,
                page_holding_the_last_row_has_no_next_cursor,
                inbox_filters_by_kind,
                inbox_filters_unread_only,
                inbox_filters_since_inclusive,
                inbox_filters_combine_with_paging,
                inbox_rejects_page_size_zero_and_above_maximum,
                malformed_cursor_strings_are_rejected,
                cursor_far_outside_the_stored_range_is_answered_without_error_or_panic,
                unread_count_counts_only_unread,
                mark_read_sets_read_at_and_mark_unread_clears_it,
                mark_all_read_marks_every_unread_and_reports_how_many,
                delete_removes_only_that_notification,
                purge_deletes_notifications_created_before_the_cutoff,
                another_users_notification_cannot_be_read,
                another_users_notification_cannot_be_marked_read_or_unread,
                another_users_notification_cannot_be_deleted,
                mark_all_read_touches_only_the_callers_notifications,
                listing_with_another_users_cursor_and_filters_reveals_nothing_of_theirs,
            );
        }
    };
}

/// Stamps out every [`TemplateStore`] test of the suite: see the
/// [module docs](crate::store::testsuite).
#[macro_export]
macro_rules! template_store_conformance_tests {
    ($factory:path $(, teardown = $teardown:path)? $(,)?) => {
        mod template_store_conformance {
            #[allow(unused_imports)]
            use super::*;
            $crate::__store_conformance_each!($factory, [$($teardown)?];
                template_save_then_get_returns_it,
                template_get_of_an_unknown_name_or_locale_is_none,
                template_save_replaces_same_name_and_locale_keeping_id_and_created_at,
                template_locales_are_separate_variants,
                template_list_orders_by_name_then_locale_default_first,
                template_deactivate_marks_inactive_and_save_reactivates,
                template_deactivate_of_an_unknown_template_is_not_found,
                template_save_under_an_id_taken_by_another_template_is_a_conflict,
                template_with_an_empty_locale_is_rejected,
            );
        }
    };
}

/// One `#[tokio::test]` per suite function (internal to the macros above).
#[doc(hidden)]
#[macro_export]
macro_rules! __store_conformance_each {
    ($factory:path, $teardown:tt; $($name:ident),* $(,)?) => {
        $(
            #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let store = ::std::sync::Arc::new($factory().await);
                let in_task = ::std::sync::Arc::clone(&store);
                // In a task, so a failed assertion still reaches the teardown.
                let outcome = ::tokio::spawn(async move {
                    $crate::store::testsuite::$name(&*in_task).await;
                })
                .await;
                $crate::__store_conformance_teardown!($teardown, store);
                if let ::std::result::Result::Err(error) = outcome {
                    if error.is_panic() {
                        ::std::panic::resume_unwind(error.into_panic());
                    }
                    panic!("test task did not finish: {error}");
                }
            }
        )*
    };
}

/// Calls the optional teardown (internal to the macros above).
#[doc(hidden)]
#[macro_export]
macro_rules! __store_conformance_teardown {
    ([], $store:ident) => {};
    ([$teardown:path], $store:ident) => {
        $teardown(&*$store).await;
    };
}

// ---------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------

/// A user id no other test uses.
fn fresh_user(label: &str) -> String {
    format!("{label}-{}", Uuid::now_v7().simple())
}

/// A fixed instant, `seconds` after 2024-01-01T00:00:00Z.
fn at(seconds: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0)
        .single()
        .expect("a valid fixed date")
        + chrono::Duration::seconds(seconds)
}

/// A pending, unread in-app notification for `user`, created at `at(seconds)`.
fn notification(user: &str, seconds: i64) -> Notification {
    let mut n = Notification::new(user, NotificationKind::System, "Title", "Body");
    n.created_at = at(seconds);
    n
}

/// `timestamp` without its sub-microsecond part.
fn micros(timestamp: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(timestamp.timestamp_micros()).expect("in range")
}

async fn record_all<S: NotificationStore + ?Sized>(store: &S, notifications: &[Notification]) {
    for n in notifications {
        store.record(n).await.expect("record");
    }
}

/// The ids of a page, in order.
fn ids(page: &InboxPage) -> Vec<Uuid> {
    page.items.iter().map(|n| n.id).collect()
}

/// `notifications` in inbox order: newest first, ties by id, both descending.
fn inbox_order(notifications: &[Notification]) -> Vec<Uuid> {
    let mut sorted: Vec<&Notification> = notifications.iter().collect();
    sorted.sort_by_key(|n| std::cmp::Reverse((n.created_at, n.id)));
    sorted.into_iter().map(|n| n.id).collect()
}

/// Every page of `user`'s inbox for `query` (whose cursor is ignored), following
/// `next_cursor`; fails the test if a page is empty but announced or paging loops.
async fn all_pages<S: NotificationStore + ?Sized>(
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

fn flatten(pages: &[InboxPage]) -> Vec<Uuid> {
    pages.iter().flat_map(ids).collect()
}

fn template(name: &str, locale: Option<&str>) -> MessageTemplate {
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
fn fresh_name(label: &str) -> String {
    format!("{label}_{}", Uuid::now_v7().simple())
}

fn assert_not_found<T: std::fmt::Debug>(result: Result<T, StoreError>, what: &str) {
    match result {
        Err(error) if error.is_not_found() => {}
        other => panic!("{what}: expected NotFound, got {other:?}"),
    }
}

fn assert_conflict<T: std::fmt::Debug>(result: Result<T, StoreError>, what: &str) {
    match result {
        Err(error) if error.is_conflict() => {}
        other => panic!("{what}: expected Conflict, got {other:?}"),
    }
}

fn assert_invalid_input<T: std::fmt::Debug>(result: Result<T, StoreError>, what: &str) {
    match result {
        Err(StoreError::InvalidInput { .. }) => {}
        other => panic!("{what}: expected InvalidInput, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------
// NotificationStore: record, get, status
// ---------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------
// NotificationStore: attempts
// ---------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------
// NotificationStore: the inbox
// ---------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------
// NotificationStore: read state, delete, purge
// ---------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------
// NotificationStore: one user cannot see or touch another's notifications
// ---------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------
// TemplateStore
// ---------------------------------------------------------------------------

/// What `save` returned and `get` gives back carry every field of the template;
/// `updated_at` is set by the store.
pub async fn template_save_then_get_returns_it<S>(store: &S)
where
    S: TemplateStore + ?Sized,
{
    let mut t = template(&fresh_name("welcome"), None);
    t.updated_at = at(0); // stale: the store replaces it
    let saved = store.save(&t).await.expect("save");
    assert!(saved.updated_at > at(0), "updated_at is set by the store");
    let mut expected = t.clone();
    expected.updated_at = saved.updated_at;
    assert_eq!(saved, expected);

    let got = TemplateStore::get_template(store, &t.name, None)
        .await
        .expect("get")
        .expect("present");
    assert_eq!(got, saved);
}

/// An empty locale string is invalid input: it would otherwise shadow the
/// default (`None`) variant.
pub async fn template_with_an_empty_locale_is_rejected<S>(store: &S)
where
    S: TemplateStore + ?Sized,
{
    let name = fresh_name("blank");
    let saved = store.save(&template(&name, Some(""))).await;
    assert!(
        matches!(saved, Err(StoreError::InvalidInput { .. })),
        "an empty locale was accepted: {saved:?}"
    );
    assert_eq!(
        TemplateStore::get_template(store, &name, None)
            .await
            .expect("get"),
        None
    );
}

/// `get` of a missing name, or of a locale without a variant, is `None`.
pub async fn template_get_of_an_unknown_name_or_locale_is_none<S>(store: &S)
where
    S: TemplateStore + ?Sized,
{
    let name = fresh_name("welcome");
    assert_eq!(
        TemplateStore::get_template(store, &name, None)
            .await
            .expect("get"),
        None
    );
    store.save(&template(&name, None)).await.expect("save");
    assert_eq!(
        TemplateStore::get_template(store, &name, Some("fr"))
            .await
            .expect("get"),
        None
    );
    assert_eq!(
        TemplateStore::get_template(store, &fresh_name("other"), None)
            .await
            .expect("get"),
        None
    );
}

/// Saving the same name and locale again replaces the content but keeps the first
/// id and `created_at`, and `updated_at` does not go back.
pub async fn template_save_replaces_same_name_and_locale_keeping_id_and_created_at<S>(store: &S)
where
    S: TemplateStore + ?Sized,
{
    let name = fresh_name("receipt");
    let mut first = template(&name, Some("en"));
    first.created_at = at(0);
    let first = store.save(&first).await.expect("save");

    let mut second = MessageTemplate::new(&name, TemplateKind::Sms, "Paid {{amount}}")
        .with_locale("en")
        .with_variables(["amount"]);
    second.is_active = false;
    second.metadata = json!({"version": 2});
    second.updated_at = at(1); // stale: the store replaces it
    let saved = store.save(&second).await.expect("save again");

    assert_eq!(saved.id, first.id, "the first id is kept");
    assert_eq!(saved.created_at, at(0), "the first created_at is kept");
    assert!(
        saved.updated_at >= first.updated_at,
        "updated_at does not go back"
    );
    assert!(saved.updated_at > at(1), "updated_at is set by the store");
    assert_eq!(saved.kind, TemplateKind::Sms);
    assert_eq!(saved.subject, None);
    assert_eq!(saved.content, "Paid {{amount}}");
    assert_eq!(saved.variables, vec!["amount".to_owned()]);
    assert!(!saved.is_active);
    assert_eq!(saved.metadata, json!({"version": 2}));

    let got = TemplateStore::get_template(store, &name, Some("en"))
        .await
        .expect("get")
        .expect("present");
    assert_eq!(got, saved);
    let rows: Vec<_> = store
        .list()
        .await
        .expect("list")
        .into_iter()
        .filter(|t| t.name == name)
        .collect();
    assert_eq!(rows.len(), 1, "replaced, not added");
}

/// The default (no locale) and each locale are separate rows.
pub async fn template_locales_are_separate_variants<S>(store: &S)
where
    S: TemplateStore + ?Sized,
{
    let name = fresh_name("welcome");
    let mut default = template(&name, None);
    default.content = "Hello".into();
    let mut en = template(&name, Some("en"));
    en.content = "Hi".into();
    let mut pt = template(&name, Some("pt-BR"));
    pt.content = "Olá".into();
    for t in [&default, &en, &pt] {
        store.save(t).await.expect("save");
    }

    for (locale, content) in [(None, "Hello"), (Some("en"), "Hi"), (Some("pt-BR"), "Olá")] {
        let got = TemplateStore::get_template(store, &name, locale)
            .await
            .expect("get")
            .expect("present");
        assert_eq!(got.content, content);
        assert_eq!(got.locale.as_deref(), locale);
    }

    let mut en_again = template(&name, Some("en"));
    en_again.content = "Hey".into();
    store.save(&en_again).await.expect("save en again");
    let got = TemplateStore::get_template(store, &name, None)
        .await
        .expect("get")
        .expect("present");
    assert_eq!(got.content, "Hello", "the default is untouched");
}

/// `list` returns every template by name, then locale with the default first.
pub async fn template_list_orders_by_name_then_locale_default_first<S>(store: &S)
where
    S: TemplateStore + ?Sized,
{
    let prefix = fresh_name("t");
    let a = format!("{prefix}_a");
    let b = format!("{prefix}_b");
    let rows = [
        template(&b, Some("en")),
        template(&a, Some("pt-BR")),
        template(&b, None),
        template(&a, Some("en")),
        template(&a, None),
        template(&a, Some("de")),
    ];
    for t in &rows {
        store.save(t).await.expect("save");
    }

    let listed: Vec<(String, Option<String>)> = store
        .list()
        .await
        .expect("list")
        .into_iter()
        .filter(|t| t.name.starts_with(&prefix))
        .map(|t| (t.name, t.locale))
        .collect();
    let expected: Vec<(String, Option<String>)> = [
        (&a, None),
        (&a, Some("de")),
        (&a, Some("en")),
        (&a, Some("pt-BR")),
        (&b, None),
        (&b, Some("en")),
    ]
    .into_iter()
    .map(|(n, l)| (n.clone(), l.map(str::to_owned)))
    .collect();
    assert_eq!(listed, expected);
}

/// `deactivate` marks one variant inactive (it is still returned by `get`); saving
/// it active again reactivates it.
pub async fn template_deactivate_marks_inactive_and_save_reactivates<S>(store: &S)
where
    S: TemplateStore + ?Sized,
{
    let name = fresh_name("welcome");
    store.save(&template(&name, None)).await.expect("save");
    let en = store
        .save(&template(&name, Some("en")))
        .await
        .expect("save");

    store
        .deactivate(&name, Some("en"))
        .await
        .expect("deactivate");
    let got = TemplateStore::get_template(store, &name, Some("en"))
        .await
        .expect("get")
        .expect("inactive templates are still returned");
    assert!(!got.is_active);
    assert!(got.updated_at >= en.updated_at);
    let default = TemplateStore::get_template(store, &name, None)
        .await
        .expect("get")
        .expect("present");
    assert!(default.is_active, "other variants stay active");

    store
        .deactivate(&name, Some("en"))
        .await
        .expect("deactivate again");
    let reactivated = store
        .save(&template(&name, Some("en")))
        .await
        .expect("save");
    assert!(reactivated.is_active);
    assert_eq!(reactivated.id, en.id);
}

/// `deactivate` of a missing name or locale is `NotFound`.
pub async fn template_deactivate_of_an_unknown_template_is_not_found<S>(store: &S)
where
    S: TemplateStore + ?Sized,
{
    let name = fresh_name("welcome");
    assert_not_found(store.deactivate(&name, None).await, "unknown name");
    store.save(&template(&name, None)).await.expect("save");
    assert_not_found(store.deactivate(&name, Some("fr")).await, "unknown locale");
}

/// Saving a new (name, locale) under an id another template holds is a `Conflict`
/// and stores nothing.
pub async fn template_save_under_an_id_taken_by_another_template_is_a_conflict<S>(store: &S)
where
    S: TemplateStore + ?Sized,
{
    let first = store
        .save(&template(&fresh_name("first"), None))
        .await
        .expect("save");
    let mut second = template(&fresh_name("second"), None);
    second.id = first.id;
    assert_conflict(store.save(&second).await, "save under a taken id");
    assert_eq!(
        TemplateStore::get_template(store, &second.name, None)
            .await
            .expect("get"),
        None
    );
}
