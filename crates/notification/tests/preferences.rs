//! The service checks the user's preferences before sending: opt-outs skip
//! (recorded `skipped` with the reason), critical categories bypass, quiet
//! hours hold (recorded `scheduled`, sent later by a delayed message), and
//! marketing emails carry one-click unsubscribe links. Time is an injected clock.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, NaiveTime, TimeZone, Utc};
use messaging_core::{MessagingService, RetryPolicy, SubscribeOptions};
use messaging_model::{NotificationKind, NotificationStatus, topics};
use notification::channel::{EmailMessage, RecordingChannel};
use notification::events::EventRules;
use notification::preferences::{Clock, PreferencePolicy};
use notification::store::{
    InMemoryNotificationStore, InMemoryPreferenceStore, InMemoryTemplateStore, NotificationStore,
    OptOut, PreferenceChange, PreferenceStore, QuietHours,
};
use notification::unsubscribe::{
    UnsubscribeConfig, UnsubscribeKey, token_of_url, unsubscribe_one_click_at,
};
use notification::{EmailRequest, NotificationAction, NotificationService};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(10);

/// 23:00 in Berlin (CET) on 2026-01-15.
fn berlin_night() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 15, 22, 0, 0).unwrap()
}

/// Noon in Berlin.
fn berlin_noon() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 15, 11, 0, 0).unwrap()
}

fn nights() -> QuietHours {
    QuietHours::new(
        NaiveTime::from_hms_opt(22, 0, 0).unwrap(),
        NaiveTime::from_hms_opt(7, 0, 0).unwrap(),
        chrono_tz::Europe::Berlin,
    )
}

fn key() -> UnsubscribeKey {
    UnsubscribeKey::new(b"0123456789abcdef0123456789abcdef".to_vec()).unwrap()
}

struct Setup {
    service: NotificationService,
    store: InMemoryNotificationStore,
    prefs: InMemoryPreferenceStore,
    outbox: RecordingChannel<EmailMessage>,
}

fn setup(now: DateTime<Utc>) -> Setup {
    let store = InMemoryNotificationStore::new();
    let prefs = InMemoryPreferenceStore::new();
    let outbox = RecordingChannel::<EmailMessage>::new();
    let clock: Arc<dyn Clock> = Arc::new(move || now);
    let service = NotificationService::new(
        Arc::new(store.clone()),
        Arc::new(InMemoryTemplateStore::new()),
    )
    .with_email(Arc::new(outbox.clone()))
    .with_preferences(Arc::new(prefs.clone()))
    .with_preference_policy(PreferencePolicy::new().with_critical("security"))
    .with_clock(clock)
    .with_unsubscribe(
        UnsubscribeConfig::new(key(), "https://example.com/unsubscribe")
            .with_mailto("unsubscribe@example.com"),
    );
    Setup {
        service,
        store,
        prefs,
        outbox,
    }
}

fn email(user: &str, category: &str) -> EmailRequest {
    EmailRequest::new(
        user,
        "ann@example.com",
        format!("About {category}"),
        "Hello",
    )
    .unwrap()
    .with_category(category)
}

#[tokio::test]
async fn an_opted_out_category_is_recorded_skipped_with_the_reason_and_not_sent() {
    let s = setup(berlin_noon());
    s.prefs
        .update_preferences(
            "ann",
            &[PreferenceChange::opt_out(
                OptOut::category("marketing").on(NotificationKind::Email),
            )],
        )
        .await
        .unwrap();
    let skipped = s.service.send(email("ann", "marketing")).await.unwrap();
    assert_eq!(skipped.status, NotificationStatus::Skipped);
    assert_eq!(
        skipped.error.as_deref(),
        Some("opted out of marketing by email")
    );
    assert_eq!(skipped.metadata["category"], "marketing");
    assert!(s.outbox.sent().is_empty());
    // Recorded, never silently dropped.
    let stored = s.store.get_notification("ann", skipped.id).await.unwrap();
    assert_eq!(stored.status, NotificationStatus::Skipped);
    assert_eq!(stored.attempts, 0);

    // Another category, and another user, are sent.
    let billing = s.service.send(email("ann", "billing")).await.unwrap();
    assert_eq!(billing.status, NotificationStatus::Sent);
    let bobs = s.service.send(email("bob", "marketing")).await.unwrap();
    assert_eq!(bobs.status, NotificationStatus::Sent);
    assert_eq!(s.outbox.sent().len(), 2);
}

#[tokio::test]
async fn a_global_or_channel_opt_out_skips_everything_but_a_critical_category() {
    let s = setup(berlin_night());
    s.prefs
        .update_preferences(
            "ann",
            &[
                PreferenceChange::opt_out(OptOut::everything()),
                PreferenceChange::QuietHours(Some(nights())),
            ],
        )
        .await
        .unwrap();
    let skipped = s.service.send(email("ann", "billing")).await.unwrap();
    assert_eq!(skipped.status, NotificationStatus::Skipped);
    assert_eq!(skipped.error.as_deref(), Some("opted out of everything"));
    // Uncategorised mail is covered by the global opt-out too.
    let plain = EmailRequest::new("ann", "ann@example.com", "Hi", "x").unwrap();
    assert_eq!(
        s.service.send(plain).await.unwrap().status,
        NotificationStatus::Skipped
    );
    // A password reset (critical) goes out at once: opt-out and quiet hours bypassed.
    let reset = s.service.send(email("ann", "security")).await.unwrap();
    assert_eq!(reset.status, NotificationStatus::Sent);
    assert_eq!(s.outbox.sent().len(), 1);
    assert_eq!(s.outbox.sent()[0].subject, "About security");
    // No unsubscribe links on a non-marketing email.
    assert!(s.outbox.sent()[0].list_unsubscribe.is_none());
}

#[tokio::test]
async fn inside_quiet_hours_a_notification_is_recorded_scheduled_for_the_window_end() {
    let s = setup(berlin_night());
    s.prefs
        .update_preferences("ann", &[PreferenceChange::QuietHours(Some(nights()))])
        .await
        .unwrap();
    let action = NotificationAction::from(email("ann", "billing"));
    let held = s
        .service
        .execute_once(action.clone(), "event-1")
        .await
        .unwrap();
    assert_eq!(held.status, NotificationStatus::Scheduled);
    // 07:00 CET the next morning.
    let expected = Utc.with_ymd_and_hms(2026, 1, 16, 6, 0, 0).unwrap();
    assert_eq!(held.metadata["scheduled_for"], json!(expected));
    assert!(s.outbox.sent().is_empty());

    // A redelivery of the event neither sends nor adds a row.
    let again = s
        .service
        .execute_once(action.clone(), "event-1")
        .await
        .unwrap();
    assert_eq!(
        (again.id, again.status),
        (held.id, NotificationStatus::Scheduled)
    );
    assert!(s.outbox.sent().is_empty());

    // Its delayed message: sent on the same row, although the clock still
    // says night (not held again).
    let sent = s
        .service
        .execute_released(action.clone(), "event-1")
        .await
        .unwrap();
    assert_eq!((sent.id, sent.status), (held.id, NotificationStatus::Sent));
    assert_eq!(s.outbox.sent().len(), 1);
    // A second delayed message sends nothing more.
    let twice = s.service.execute_released(action, "event-1").await.unwrap();
    assert_eq!(twice.status, NotificationStatus::Sent);
    assert_eq!(s.outbox.sent().len(), 1);
    assert_eq!(s.store.all().len(), 1);
}

#[tokio::test]
async fn outside_quiet_hours_and_for_critical_categories_nothing_is_held() {
    let s = setup(berlin_noon());
    s.prefs
        .update_preferences("ann", &[PreferenceChange::QuietHours(Some(nights()))])
        .await
        .unwrap();
    assert_eq!(
        s.service
            .send(email("ann", "billing"))
            .await
            .unwrap()
            .status,
        NotificationStatus::Sent
    );
    let night = setup(berlin_night());
    night
        .prefs
        .update_preferences("ann", &[PreferenceChange::QuietHours(Some(nights()))])
        .await
        .unwrap();
    assert_eq!(
        night
            .service
            .send(email("ann", "security"))
            .await
            .unwrap()
            .status,
        NotificationStatus::Sent
    );
}

#[tokio::test]
async fn quiet_hours_follow_the_users_zone_across_the_spring_forward_night() {
    // 23:00 CET on 2026-03-28; Berlin springs forward at 02:00 → 03:00.
    let s = setup(Utc.with_ymd_and_hms(2026, 3, 28, 22, 0, 0).unwrap());
    s.prefs
        .update_preferences("ann", &[PreferenceChange::QuietHours(Some(nights()))])
        .await
        .unwrap();
    let held = s.service.send(email("ann", "billing")).await.unwrap();
    assert_eq!(held.status, NotificationStatus::Scheduled);
    // 07:00 CEST = 05:00 UTC (not 06:00).
    assert_eq!(
        held.metadata["scheduled_for"],
        json!(Utc.with_ymd_and_hms(2026, 3, 29, 5, 0, 0).unwrap())
    );
}

#[tokio::test]
async fn a_marketing_email_carries_one_click_links_whose_token_unsubscribes_its_user() {
    let s = setup(berlin_noon());
    let sent = s.service.send(email("ann", "marketing")).await.unwrap();
    assert_eq!(sent.status, NotificationStatus::Sent);
    let outbox = s.outbox.sent();
    let links = outbox[0].list_unsubscribe.clone().expect("links");
    assert!(
        links
            .https
            .starts_with("https://example.com/unsubscribe?token=")
    );
    assert!(!links.https.contains("ann"));
    assert!(
        links
            .mailto
            .as_deref()
            .unwrap()
            .starts_with("mailto:unsubscribe@example.com")
    );
    let token = token_of_url(&links.https).unwrap();
    let done = unsubscribe_one_click_at(&key(), token, &s.prefs, berlin_noon())
        .await
        .unwrap();
    assert_eq!(done.user_id, "ann");
    let next = s.service.send(email("ann", "marketing")).await.unwrap();
    assert_eq!(next.status, NotificationStatus::Skipped);
    assert_eq!(s.outbox.sent().len(), 1);
}

fn options() -> SubscribeOptions {
    SubscribeOptions::new("notification")
        .with_retry(RetryPolicy::exponential(
            Duration::from_millis(10),
            Duration::from_millis(40),
        ))
        .with_block_timeout(Duration::from_millis(50))
}

#[tokio::test]
async fn an_event_inside_quiet_hours_is_sent_by_its_delayed_message_once() {
    // The clock says 23:00 in Berlin on a past night: the window's end has
    // passed in real time, so the delayed message is due at once; the clock
    // still says night when it arrives, and the notification is sent anyway.
    let s = setup(berlin_night());
    s.prefs
        .update_preferences("ann", &[PreferenceChange::QuietHours(Some(nights()))])
        .await
        .unwrap();
    let service = Arc::new(s.service);
    let messaging = MessagingService::in_memory();
    let rules = EventRules::defaults().with_category(topics::NOTIFICATION_EMAIL, "billing");
    service
        .listen_to_events_with(&messaging, &rules, options())
        .await
        .unwrap();
    messaging
        .publish(
            topics::NOTIFICATION_EMAIL,
            json!({"user_id": "ann", "to": "ann@example.com", "subject": "Your invoice", "text": "42 EUR"}),
        )
        .await
        .unwrap();
    let done = s
        .store
        .wait_for(WAIT, |all| {
            all.iter().any(|n| n.status == NotificationStatus::Sent)
        })
        .await
        .expect("sent after its delay");
    assert_eq!(done.len(), 1, "one row: {done:?}");
    assert_eq!(done[0].metadata["category"], "billing");
    assert!(done[0].metadata.get("scheduled_for").is_some());
    assert_eq!(s.outbox.sent().len(), 1);
    messaging.shutdown().await;
}

#[tokio::test]
async fn a_notification_due_after_quiet_hours_is_skipped_if_the_user_opted_out_meanwhile() {
    let s = setup(berlin_night());
    s.prefs
        .update_preferences("ann", &[PreferenceChange::QuietHours(Some(nights()))])
        .await
        .unwrap();
    let action = NotificationAction::from(email("ann", "marketing"));
    let held = s
        .service
        .execute_once(action.clone(), "event-1")
        .await
        .unwrap();
    assert_eq!(held.status, NotificationStatus::Scheduled);
    s.prefs
        .update_preferences(
            "ann",
            &[PreferenceChange::opt_out(OptOut::category("marketing"))],
        )
        .await
        .unwrap();
    let due = s.service.execute_released(action, "event-1").await.unwrap();
    assert_eq!((due.id, due.status), (held.id, NotificationStatus::Skipped));
    assert_eq!(due.error.as_deref(), Some("opted out of marketing"));
    assert!(s.outbox.sent().is_empty());
    assert_eq!(
        s.store
            .get_notification("ann", held.id)
            .await
            .unwrap()
            .status,
        NotificationStatus::Skipped
    );
}
