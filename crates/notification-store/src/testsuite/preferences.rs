//! [`PreferenceStore`]: defaults, changes, quiet hours, subscriber ids, and one
//! user never reading or changing another's.

use chrono::NaiveTime;
use messaging_model::NotificationKind;

use crate::{OptOut, PreferenceChange, PreferenceStore, Preferences, QuietHours};

use super::fixtures::fresh_user;

fn berlin_nights() -> QuietHours {
    QuietHours::new(
        NaiveTime::from_hms_opt(22, 0, 0).expect("valid"),
        NaiveTime::from_hms_opt(7, 0, 0).expect("valid"),
        chrono_tz::Europe::Berlin,
    )
}

/// A user never stored has the defaults: no opt-out, no quiet hours, no
/// `updated_at`.
pub async fn preferences_of_an_unknown_user_are_the_defaults<S>(store: &S)
where
    S: PreferenceStore + ?Sized,
{
    let user = fresh_user("ann");
    let prefs = store.get_preferences(&user).await.expect("get");
    assert_eq!(prefs, Preferences::new(&user));
    assert!(
        store
            .get_preferences("  ")
            .await
            .expect_err("blank user")
            .to_string()
            .contains("user id")
    );
}

/// Opt-outs are added, read back sorted without repeats, and removed exactly.
pub async fn preference_opt_outs_are_kept_and_removed_exactly<S>(store: &S)
where
    S: PreferenceStore + ?Sized,
{
    let user = fresh_user("ann");
    let marketing_email = OptOut::category("marketing").on(NotificationKind::Email);
    let updated = store
        .update_preferences(
            &user,
            &[
                PreferenceChange::opt_out(marketing_email.clone()),
                PreferenceChange::opt_out(OptOut::channel(NotificationKind::Sms)),
                PreferenceChange::opt_out(marketing_email.clone()),
            ],
        )
        .await
        .expect("update");
    assert_eq!(updated.user_id, user);
    assert_eq!(updated.opt_outs.len(), 2, "{updated:?}");
    assert!(updated.updated_at.is_some());
    let read = store.get_preferences(&user).await.expect("get");
    assert_eq!(read, updated);
    assert!(
        read.opted_out(Some("marketing"), NotificationKind::Email)
            .is_some()
    );
    assert!(
        read.opted_out(Some("marketing"), NotificationKind::Push)
            .is_none()
    );
    assert!(read.opted_out(None, NotificationKind::Sms).is_some());

    // Opting in to all marketing removes nothing: only the exact opt-out goes.
    let same = store
        .update_preferences(
            &user,
            &[PreferenceChange::opt_in(OptOut::category("marketing"))],
        )
        .await
        .expect("update");
    assert_eq!(same.opt_outs, read.opt_outs);
    let after = store
        .update_preferences(&user, &[PreferenceChange::opt_in(marketing_email)])
        .await
        .expect("update");
    assert_eq!(after.opt_outs, vec![OptOut::channel(NotificationKind::Sms)]);
    assert!(after.updated_at >= read.updated_at);
    assert_eq!(store.get_preferences(&user).await.expect("get"), after);
}

/// Quiet hours are kept with their time zone, and cleared.
pub async fn preference_quiet_hours_are_kept_with_their_time_zone<S>(store: &S)
where
    S: PreferenceStore + ?Sized,
{
    let user = fresh_user("ann");
    store
        .update_preferences(
            &user,
            &[PreferenceChange::QuietHours(Some(berlin_nights()))],
        )
        .await
        .expect("set");
    let read = store.get_preferences(&user).await.expect("get");
    assert_eq!(read.quiet_hours, Some(berlin_nights()));
    store
        .update_preferences(&user, &[PreferenceChange::QuietHours(None)])
        .await
        .expect("clear");
    assert_eq!(
        store.get_preferences(&user).await.expect("get").quiet_hours,
        None
    );
}

/// What Alice changes is hers alone: Bob's preferences stay as they were, and
/// neither reads the other's.
pub async fn another_users_preferences_can_be_neither_read_nor_changed<S>(store: &S)
where
    S: PreferenceStore + ?Sized,
{
    let alice = fresh_user("alice");
    let bob = fresh_user("bob");
    let bobs = store
        .update_preferences(
            &bob,
            &[
                PreferenceChange::opt_out(OptOut::category("billing")),
                PreferenceChange::QuietHours(Some(berlin_nights())),
            ],
        )
        .await
        .expect("bob's");
    store
        .update_preferences(
            &alice,
            &[
                PreferenceChange::opt_out(OptOut::everything()),
                PreferenceChange::opt_in(OptOut::category("billing")),
                PreferenceChange::QuietHours(None),
            ],
        )
        .await
        .expect("alice's");
    assert_eq!(store.get_preferences(&bob).await.expect("get"), bobs);
    let alices = store.get_preferences(&alice).await.expect("get");
    assert_eq!(alices.user_id, alice);
    assert_eq!(alices.opt_outs, vec![OptOut::everything()]);
    assert_eq!(alices.quiet_hours, None);

    // Subscriber ids are per user and lead back to their own user only.
    let alices_id = store.subscriber_id(&alice).await.expect("id");
    let bobs_id = store.subscriber_id(&bob).await.expect("id");
    assert_ne!(alices_id, bobs_id);
    assert_eq!(
        store.user_of_subscriber(alices_id).await.expect("find"),
        Some(alice)
    );
    assert_eq!(
        store.user_of_subscriber(bobs_id).await.expect("find"),
        Some(bob)
    );
}

/// A subscriber id is created once and stable; an unknown one finds nobody; it
/// exists for a user without stored preferences, who still reads the defaults.
pub async fn subscriber_ids_are_stable_and_unknown_ones_find_nobody<S>(store: &S)
where
    S: PreferenceStore + ?Sized,
{
    let user = fresh_user("ann");
    let first = store.subscriber_id(&user).await.expect("id");
    let again = store.subscriber_id(&user).await.expect("id");
    assert_eq!(first, again);
    let prefs = store.get_preferences(&user).await.expect("get");
    assert!(prefs.opt_outs.is_empty() && prefs.quiet_hours.is_none());
    store
        .update_preferences(
            &user,
            &[PreferenceChange::opt_out(OptOut::category("marketing"))],
        )
        .await
        .expect("update");
    assert_eq!(store.subscriber_id(&user).await.expect("id"), first);
    assert_eq!(
        store
            .user_of_subscriber(uuid::Uuid::new_v4())
            .await
            .expect("find"),
        None
    );
}

/// Concurrent updates of one user never lose one another.
pub async fn concurrent_preference_updates_all_take_effect<S>(store: &S)
where
    S: PreferenceStore + ?Sized,
{
    let user = fresh_user("ann");
    let categories: Vec<String> = (0..8).map(|i| format!("category-{i}")).collect();
    let updates = categories.iter().map(|category| {
        let user = user.clone();
        async move {
            store
                .update_preferences(
                    &user,
                    &[PreferenceChange::opt_out(OptOut::category(
                        category.clone(),
                    ))],
                )
                .await
                .expect("update")
        }
    });
    join_all(updates).await;
    let prefs = store.get_preferences(&user).await.expect("get");
    let mut got: Vec<String> = prefs
        .opt_outs
        .iter()
        .filter_map(|o| o.category.clone())
        .collect();
    got.sort();
    assert_eq!(got, categories);
}

/// Polls every future on this task until all are done (no extra dependency).
pub(super) async fn join_all<F: std::future::Future>(
    futures: impl Iterator<Item = F>,
) -> Vec<F::Output> {
    let mut pending: Vec<std::pin::Pin<Box<F>>> = futures.map(Box::pin).collect();
    let mut done: Vec<Option<F::Output>> = pending.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut all = true;
        for (slot, future) in done.iter_mut().zip(pending.iter_mut()) {
            if slot.is_none() {
                match future.as_mut().poll(cx) {
                    std::task::Poll::Ready(out) => *slot = Some(out),
                    std::task::Poll::Pending => all = false,
                }
            }
        }
        if all {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    })
    .await;
    done.into_iter().flatten().collect()
}
