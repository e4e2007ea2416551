//! [`SuppressionStore`]: the suppression list, per channel.

use std::time::Duration;

use messaging_model::NotificationKind;

use crate::{SoftBouncePolicy, Suppression, SuppressionReason, SuppressionStore};

use super::fixtures::*;

/// An email address no other test uses.
fn fresh_address(label: &str) -> String {
    format!("{}@example.com", fresh_user(label))
}

/// A suppressed address is found for its channel only, whatever the case it is
/// asked in; another address is not.
pub async fn suppression_is_per_channel_and_ignores_address_case<S>(store: &S)
where
    S: SuppressionStore + ?Sized,
{
    let address = fresh_address("Ann");
    let s = Suppression::new(
        NotificationKind::Email,
        &address,
        SuppressionReason::HardBounce,
        at(10),
    )
    .with_detail("550 5.1.1 no such user");
    let kept = store.suppress(&s).await.expect("suppress");
    assert_eq!(kept, s);
    assert_eq!(kept.address, address.to_lowercase());

    let found = store
        .find_suppression(NotificationKind::Email, &address.to_uppercase())
        .await
        .expect("find");
    assert_eq!(found, Some(s.clone()));
    assert_eq!(
        store
            .find_suppression(NotificationKind::Sms, &address)
            .await
            .expect("find sms"),
        None,
        "an email suppression says nothing of another channel"
    );
    assert_eq!(
        store
            .find_suppression(NotificationKind::Email, &fresh_address("bob"))
            .await
            .expect("find other"),
        None
    );
}

/// Suppressing an address again keeps the first suppression.
pub async fn suppressing_again_keeps_the_first_suppression<S>(store: &S)
where
    S: SuppressionStore + ?Sized,
{
    let address = fresh_address("ann");
    let first = Suppression::new(
        NotificationKind::Email,
        &address,
        SuppressionReason::Complaint,
        at(1),
    );
    store.suppress(&first).await.expect("first");
    let second = Suppression::new(
        NotificationKind::Email,
        &address,
        SuppressionReason::HardBounce,
        at(2),
    );
    assert_eq!(store.suppress(&second).await.expect("second"), first);
    assert_eq!(
        store
            .find_suppression(NotificationKind::Email, &address)
            .await
            .expect("find"),
        Some(first)
    );
}

/// Soft bounces suppress only when `threshold` of them fall within the
/// window ending at the latest; older ones do not count.
pub async fn soft_bounces_suppress_only_after_the_threshold_within_the_window<S>(store: &S)
where
    S: SuppressionStore + ?Sized,
{
    let address = fresh_address("ann");
    let policy = SoftBouncePolicy::new(3, Duration::from_secs(100));
    let email = NotificationKind::Email;
    // Two in the window, then one far later: the first two have left it.
    for seconds in [0, 50] {
        assert_eq!(
            store
                .record_soft_bounce(email, &address, at(seconds), policy)
                .await
                .expect("bounce"),
            None,
            "soft bounce at {seconds}s"
        );
    }
    assert_eq!(
        store
            .record_soft_bounce(email, &address, at(151), policy)
            .await
            .expect("bounce 151"),
        None,
        "the bounce at 0 s and at 50 s are more than 100 s before 151 s"
    );
    assert_eq!(
        store
            .record_soft_bounce(email, &address, at(200), policy)
            .await
            .expect("bounce 200"),
        None,
        "two in the window (151, 200)"
    );
    // The window is inclusive: 151 s is exactly 100 s before 251 s.
    let suppressed = store
        .record_soft_bounce(email, &address, at(251), policy)
        .await
        .expect("bounce 251")
        .expect("three in [151, 251]: suppressed");
    assert_eq!(suppressed.reason, SuppressionReason::SoftBounces);
    assert_eq!(suppressed.created_at, at(251));
    assert_eq!(
        store.find_suppression(email, &address).await.expect("find"),
        Some(suppressed.clone())
    );
    // Another channel's soft bounces are counted apart.
    assert_eq!(
        store
            .record_soft_bounce(NotificationKind::Sms, &address, at(251), policy)
            .await
            .expect("sms bounce"),
        None
    );
    // A later soft bounce keeps the suppression as it was.
    assert_eq!(
        store
            .record_soft_bounce(email, &address, at(260), policy)
            .await
            .expect("bounce 260"),
        Some(suppressed)
    );
}

/// `remove_suppression` lifts it (true once, then false) and forgets the soft
/// bounces counted so far.
pub async fn remove_lifts_a_suppression_and_forgets_soft_bounces<S>(store: &S)
where
    S: SuppressionStore + ?Sized,
{
    let email = NotificationKind::Email;
    let address = fresh_address("ann");
    let policy = SoftBouncePolicy::new(2, Duration::from_secs(1000));
    store
        .record_soft_bounce(email, &address, at(1), policy)
        .await
        .expect("bounce 1");
    assert!(
        store
            .record_soft_bounce(email, &address, at(2), policy)
            .await
            .expect("bounce 2")
            .is_some()
    );
    assert!(
        store
            .remove_suppression(email, &address.to_uppercase())
            .await
            .expect("remove")
    );
    assert!(
        !store
            .remove_suppression(email, &address)
            .await
            .expect("remove again")
    );
    assert_eq!(
        store.find_suppression(email, &address).await.expect("find"),
        None
    );
    assert_eq!(
        store
            .record_soft_bounce(email, &address, at(3), policy)
            .await
            .expect("bounce 3"),
        None,
        "the soft bounces before the removal are forgotten"
    );
}

/// `list_suppressions` lists every channel's, or one channel's, by channel then
/// address.
pub async fn list_suppressions_filters_by_channel_in_order<S>(store: &S)
where
    S: SuppressionStore + ?Sized,
{
    let b = fresh_address("b");
    let a = fresh_address("a");
    for (channel, address) in [
        (NotificationKind::Email, &b),
        (NotificationKind::Email, &a),
        (NotificationKind::Sms, &a),
    ] {
        store
            .suppress(&Suppression::new(
                channel,
                address,
                SuppressionReason::Manual,
                at(5),
            ))
            .await
            .expect("suppress");
    }
    let emails: Vec<String> = store
        .list_suppressions(Some(NotificationKind::Email))
        .await
        .expect("list email")
        .into_iter()
        .map(|s| s.address)
        .filter(|address| *address == a || *address == b)
        .collect();
    assert_eq!(emails, vec![a.clone(), b.clone()]);
    let all: Vec<(NotificationKind, String)> = store
        .list_suppressions(None)
        .await
        .expect("list all")
        .into_iter()
        .map(|s| (s.channel, s.address))
        .filter(|(_, address)| *address == a || *address == b)
        .collect();
    assert_eq!(
        all,
        vec![
            (NotificationKind::Email, a.clone()),
            (NotificationKind::Email, b),
            (NotificationKind::Sms, a),
        ]
    );
}
