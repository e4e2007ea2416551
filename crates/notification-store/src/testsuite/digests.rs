//! [`DigestStore`]: windows open with their first event, count each event once,
//! close once, and belong to their user.

use serde_json::json;

use crate::DigestStore;

use super::fixtures::{at, fresh_user};

/// The first event opens a window, later ones join it; appending an event again
/// counts it once and answers as the first time.
pub async fn digest_events_join_one_open_window_once_each<S>(store: &S)
where
    S: DigestStore + ?Sized,
{
    let user = fresh_user("ann");
    let first = store
        .append_digest_event(&user, "comments", "e1", &json!({"n": 1}), 100, at(0))
        .await
        .expect("append");
    assert!(first.opened_by_this_event);
    assert_eq!(first.count, 1);
    let second = store
        .append_digest_event(&user, "comments", "e2", &json!({"n": 2}), 100, at(1))
        .await
        .expect("append");
    assert_eq!(second.window_id, first.window_id);
    assert!(!second.opened_by_this_event);
    assert_eq!(second.count, 2);
    assert_eq!(second.opened_at, at(0));
    let again = store
        .append_digest_event(&user, "comments", "e1", &json!({"n": 1}), 100, at(2))
        .await
        .expect("append again");
    assert_eq!(again.window_id, first.window_id);
    assert!(again.opened_by_this_event, "the opener stays the opener");
    assert_eq!(again.count, 2);
    // Another key, another user: other windows.
    let other_key = store
        .append_digest_event(&user, "likes", "e1", &json!({}), 100, at(0))
        .await
        .expect("append");
    let other_user = store
        .append_digest_event(&fresh_user("bob"), "comments", "e1", &json!({}), 100, at(0))
        .await
        .expect("append");
    assert_ne!(other_key.window_id, first.window_id);
    assert_ne!(other_user.window_id, first.window_id);
}

/// Closing returns the events in order; closing again returns the same; the
/// next event opens a new window; an event of the closed window appended
/// again says it is closed.
pub async fn a_digest_window_closes_once_and_the_next_event_opens_another<S>(store: &S)
where
    S: DigestStore + ?Sized,
{
    let user = fresh_user("ann");
    let first = store
        .append_digest_event(&user, "comments", "e1", &json!({"n": 1}), 100, at(0))
        .await
        .expect("append");
    store
        .append_digest_event(&user, "comments", "e2", &json!({"n": 2}), 100, at(1))
        .await
        .expect("append");
    let closed = store
        .close_digest(&user, first.window_id, at(10))
        .await
        .expect("close")
        .expect("the window");
    assert_eq!(closed.events, vec![json!({"n": 1}), json!({"n": 2})]);
    assert_eq!(closed.closed_at, Some(at(10)));
    assert_eq!(
        (closed.user_id.as_str(), closed.digest_key.as_str()),
        (user.as_str(), "comments")
    );
    let again = store
        .close_digest(&user, first.window_id, at(20))
        .await
        .expect("close")
        .expect("the window");
    assert_eq!(again, closed, "the first close's time stays");
    let next = store
        .append_digest_event(&user, "comments", "e3", &json!({"n": 3}), 100, at(30))
        .await
        .expect("append");
    assert_ne!(next.window_id, first.window_id);
    assert!(next.opened_by_this_event);
    assert_eq!(next.count, 1);
    let late = store
        .append_digest_event(&user, "comments", "e2", &json!({"n": 2}), 100, at(31))
        .await
        .expect("append again");
    assert_eq!(late.window_id, first.window_id);
    assert!(late.closed);
}

/// Another user's window is not found and stays open.
pub async fn another_users_digest_window_cannot_be_closed<S>(store: &S)
where
    S: DigestStore + ?Sized,
{
    let alice = fresh_user("alice");
    let bob = fresh_user("bob");
    let bobs = store
        .append_digest_event(&bob, "comments", "e1", &json!({}), 100, at(0))
        .await
        .expect("append");
    assert_eq!(
        store
            .close_digest(&alice, bobs.window_id, at(1))
            .await
            .expect("close"),
        None
    );
    let more = store
        .append_digest_event(&bob, "comments", "e2", &json!({}), 100, at(2))
        .await
        .expect("append");
    assert_eq!(more.window_id, bobs.window_id, "still open");
}

/// Concurrent appends of one (user, key) land in one window, each once.
pub async fn concurrent_digest_appends_land_in_one_window<S>(store: &S)
where
    S: DigestStore + ?Sized,
{
    let user = fresh_user("ann");
    let appends = (0..8).map(|i| {
        let user = user.clone();
        async move {
            store
                .append_digest_event(
                    &user,
                    "comments",
                    &format!("e{i}"),
                    &json!({"n": i}),
                    100,
                    at(i),
                )
                .await
                .expect("append")
        }
    });
    let answers = super::preferences::join_all(appends).await;
    let window = answers[0].window_id;
    assert!(answers.iter().all(|a| a.window_id == window), "{answers:?}");
    assert_eq!(answers.iter().filter(|a| a.opened_by_this_event).count(), 1);
    let closed = store
        .close_digest(&user, window, at(100))
        .await
        .expect("close")
        .expect("window");
    assert_eq!(closed.events.len(), 8);
}

/// A window holding `max_events` is closed by the next event, which opens the
/// next window: no window holds more.
pub async fn a_full_digest_window_is_closed_by_the_next_event<S>(store: &S)
where
    S: DigestStore + ?Sized,
{
    let user = fresh_user("ann");
    let first = store
        .append_digest_event(&user, "comments", "e1", &json!(1), 2, at(0))
        .await
        .expect("append");
    let second = store
        .append_digest_event(&user, "comments", "e2", &json!(2), 2, at(1))
        .await
        .expect("append");
    assert_eq!((second.window_id, second.count), (first.window_id, 2));
    let third = store
        .append_digest_event(&user, "comments", "e3", &json!(3), 2, at(2))
        .await
        .expect("append");
    assert_ne!(third.window_id, first.window_id);
    assert!(third.opened_by_this_event);
    assert_eq!(third.count, 1);
    let full = store
        .close_digest(&user, first.window_id, at(9))
        .await
        .expect("close")
        .expect("window");
    assert_eq!(full.events, vec![json!(1), json!(2)]);
    assert_eq!(full.closed_at, Some(at(2)), "closed by the third event");
}
