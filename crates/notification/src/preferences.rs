//! What a user's preferences decide about a notification before it is sent:
//! send it, skip it (an opt-out), or hold it until their quiet hours end.
//!
//! The order (see `docs/notification.md`): a **critical** category (password
//! reset, security alerts: [`PreferencePolicy::with_critical`]) bypasses every
//! opt-out and the quiet hours; otherwise an opt-out covering the category and
//! channel skips it (recorded `skipped`, the reason in `error`); otherwise a
//! send inside the user's quiet hours is held to the window's end (recorded
//! `scheduled`, `metadata.scheduled_for`); otherwise it is sent.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use chrono::{DateTime, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;
use messaging_model::NotificationKind;

use crate::store::{Preferences, QuietHours};

/// The wall clock, injectable for tests.
pub trait Clock: Send + Sync + 'static {
    /// Now.
    fn now(&self) -> DateTime<Utc>;
}

/// [`Clock`] of the system.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

impl<F> Clock for F
where
    F: Fn() -> DateTime<Utc> + Send + Sync + 'static,
{
    fn now(&self) -> DateTime<Utc> {
        self()
    }
}

/// Which categories are critical, and the categories of templates that do not
/// name their own.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PreferencePolicy {
    /// Categories that bypass opt-outs and quiet hours.
    pub critical: BTreeSet<String>,
    /// Template name → category, for templates whose `metadata.category` is
    /// unset (the TOML `[preferences.template_categories]`).
    pub template_categories: BTreeMap<String, String>,
}

impl PreferencePolicy {
    /// No critical category, no template category.
    pub fn new() -> Self {
        Self::default()
    }

    /// Marks `category` critical.
    pub fn with_critical(mut self, category: impl Into<String>) -> Self {
        self.critical.insert(category.into());
        self
    }

    /// Gives template `template` the category `category`.
    pub fn with_template_category(
        mut self,
        template: impl Into<String>,
        category: impl Into<String>,
    ) -> Self {
        self.template_categories
            .insert(template.into(), category.into());
        self
    }

    /// Whether `category` is critical.
    pub fn is_critical(&self, category: Option<&str>) -> bool {
        category.is_some_and(|category| self.critical.contains(category))
    }
}

/// What the preferences decide for one notification.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Decision {
    /// Send it now.
    Send,
    /// Do not send it: an opt-out covers it.
    Skip {
        /// Why (`"opted out of marketing by email"`).
        reason: String,
    },
    /// Send it at `at`, the end of the user's quiet hours.
    Defer {
        /// When.
        at: DateTime<Utc>,
    },
}

/// The decision for a notification of `category` on `channel` to a user with
/// `prefs`, at `now`. `quiet_hours_done`: the notification already waited out
/// its quiet hours (it comes back from a delayed message), so it is not held
/// again, whatever the clock says.
pub fn decide(
    policy: &PreferencePolicy,
    prefs: &Preferences,
    category: Option<&str>,
    channel: NotificationKind,
    now: DateTime<Utc>,
    quiet_hours_done: bool,
) -> Decision {
    if policy.is_critical(category) {
        return Decision::Send;
    }
    if let Some(opt_out) = prefs.opted_out(category, channel) {
        return Decision::Skip {
            reason: opt_out.describe(),
        };
    }
    // In-app notifications are silent: only the channels that reach a person
    // now wait for the quiet hours.
    if !quiet_hours_done
        && channel != NotificationKind::System
        && let Some(hours) = &prefs.quiet_hours
        && let Some(at) = next_allowed(now, hours)
    {
        return Decision::Defer { at };
    }
    Decision::Send
}

/// When a notification asked for at `now` may go out under `hours`: `None`
/// when `now` is outside the window (send now), else the window's end.
///
/// The window is wall-clock time in its zone: `start` inclusive, `end`
/// exclusive, wrapping midnight when `start > end`, empty when equal. Across
/// DST: an `end` that does not exist that day (in the spring-forward gap) is
/// the instant the clocks jump; an `end` that happens twice (fall-back
/// overlap) is the first occurrence after `now`.
///
/// ```
/// use chrono::{NaiveTime, TimeZone, Utc};
/// use notification::preferences::next_allowed;
/// use notification::store::QuietHours;
/// let nights = QuietHours::new(
///     NaiveTime::from_hms_opt(22, 0, 0).unwrap(),
///     NaiveTime::from_hms_opt(7, 0, 0).unwrap(),
///     chrono_tz::Europe::Berlin,
/// );
/// // 23:00 in Berlin (CET, UTC+1) waits until 07:00 the next morning.
/// let late = Utc.with_ymd_and_hms(2026, 1, 15, 22, 0, 0).unwrap();
/// assert_eq!(next_allowed(late, &nights), Some(Utc.with_ymd_and_hms(2026, 1, 16, 6, 0, 0).unwrap()));
/// assert_eq!(next_allowed(Utc.with_ymd_and_hms(2026, 1, 15, 11, 0, 0).unwrap(), &nights), None);
/// ```
pub fn next_allowed(now: DateTime<Utc>, hours: &QuietHours) -> Option<DateTime<Utc>> {
    let tz = hours.time_zone;
    let local = now.with_timezone(&tz).naive_local();
    let time = local.time();
    let today = local.date();
    let end_date = if hours.start < hours.end {
        if time >= hours.start && time < hours.end {
            today
        } else {
            return None;
        }
    } else if hours.start > hours.end {
        if time >= hours.start {
            today.succ_opt()?
        } else if time < hours.end {
            today
        } else {
            return None;
        }
    } else {
        return None;
    };
    Some(instant(tz, end_date.and_time(hours.end), now))
}

/// The instant of local time `local` in `tz`, the first after `now` when it
/// happens twice, the end of the gap when it does not happen.
fn instant(tz: Tz, local: NaiveDateTime, now: DateTime<Utc>) -> DateTime<Utc> {
    match tz.from_local_datetime(&local) {
        chrono::LocalResult::Single(at) => at.with_timezone(&Utc),
        chrono::LocalResult::Ambiguous(first, second) => {
            let (first, second) = (first.with_timezone(&Utc), second.with_timezone(&Utc));
            let (early, late) = (first.min(second), first.max(second));
            if early > now { early } else { late }
        }
        chrono::LocalResult::None => {
            // In a gap: the first local minute that exists is the instant the
            // clocks jumped. Gaps last hours at most; a day bounds the search.
            let mut probe = local;
            for _ in 0..(24 * 60) {
                probe += chrono::Duration::minutes(1);
                let whole = probe
                    .date()
                    .and_hms_opt(
                        chrono::Timelike::hour(&probe.time()),
                        chrono::Timelike::minute(&probe.time()),
                        0,
                    )
                    .unwrap_or(probe);
                if let Some(at) = tz.from_local_datetime(&whole).earliest() {
                    return at.with_timezone(&Utc);
                }
            }
            // Unreachable for real zones; never earlier than now.
            now
        }
    }
}

/// Where the service's preference decisions come from: the store, the policy,
/// the clock, and the one-click unsubscribe settings.
#[derive(Clone)]
pub(crate) struct Controls {
    pub(crate) store: Option<Arc<dyn crate::store::PreferenceStore>>,
    pub(crate) policy: PreferencePolicy,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) unsubscribe: Option<crate::unsubscribe::UnsubscribeConfig>,
}

impl Default for Controls {
    fn default() -> Self {
        Self {
            store: None,
            policy: PreferencePolicy::default(),
            clock: Arc::new(SystemClock),
            unsubscribe: None,
        }
    }
}

impl crate::NotificationService {
    /// Checks every send against the users' preferences in `store` (without
    /// one, every notification is sent).
    pub fn with_preferences(mut self, store: Arc<dyn crate::store::PreferenceStore>) -> Self {
        self.controls.store = Some(store);
        self
    }

    /// Sets the critical categories and template categories.
    pub fn with_preference_policy(mut self, policy: PreferencePolicy) -> Self {
        self.controls.policy = policy;
        self
    }

    /// Sets the clock the quiet hours are read on (tests inject one).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.controls.clock = clock;
        self
    }

    /// Puts one-click unsubscribe links into emails of the configured
    /// categories (needs [`with_preferences`](Self::with_preferences): the
    /// links carry the user's subscriber id).
    pub fn with_unsubscribe(mut self, config: crate::unsubscribe::UnsubscribeConfig) -> Self {
        self.controls.unsubscribe = Some(config);
        self
    }

    /// The preference store, if any.
    pub fn preference_store(&self) -> Option<&Arc<dyn crate::store::PreferenceStore>> {
        self.controls.store.as_ref()
    }

    /// The unsubscribe settings, if any.
    pub fn unsubscribe_config(&self) -> Option<&crate::unsubscribe::UnsubscribeConfig> {
        self.controls.unsubscribe.as_ref()
    }

    /// The category of a prepared notification: the request's own, else its
    /// template's (put in `metadata.category` by `compose`). Kept in
    /// `metadata.category` so the record says what was decided on.
    pub(crate) fn categorise(
        &self,
        notification: &mut messaging_model::Notification,
        own: Option<String>,
    ) -> Option<String> {
        let serde_json::Value::Object(map) = &mut notification.metadata else {
            return own;
        };
        let category = own.or_else(|| {
            map.get("category")
                .and_then(serde_json::Value::as_str)
                .map(str::to_owned)
        });
        if let Some(category) = &category {
            map.insert("category".to_owned(), serde_json::json!(category));
        }
        category
    }

    /// What the user's preferences say about `notification` now.
    pub(crate) async fn decide(
        &self,
        notification: &messaging_model::Notification,
        category: Option<&str>,
        released: bool,
    ) -> Result<Decision, crate::NotificationError> {
        let Some(store) = &self.controls.store else {
            return Ok(Decision::Send);
        };
        if self.controls.policy.is_critical(category) {
            return Ok(Decision::Send);
        }
        let prefs = store.get_preferences(&notification.user_id).await?;
        Ok(decide(
            &self.controls.policy,
            &prefs,
            category,
            notification.kind,
            self.controls.clock.now(),
            released,
        ))
    }

    /// Adds `List-Unsubscribe` links to an email of an unsubscribable category.
    pub(crate) async fn add_unsubscribe_links(
        &self,
        email: &mut crate::channel::EmailMessage,
        user_id: &str,
        category: Option<&str>,
    ) -> Result<(), crate::NotificationError> {
        let (Some(config), Some(store), Some(category)) =
            (&self.controls.unsubscribe, &self.controls.store, category)
        else {
            return Ok(());
        };
        if !config.categories.contains(category) {
            return Ok(());
        }
        let subscriber = store.subscriber_id(user_id).await?;
        let expires = self.controls.clock.now() + config.ttl;
        let token = crate::unsubscribe::UnsubscribeToken::new(
            subscriber,
            category,
            NotificationKind::Email,
            expires,
        )
        .sign(&config.key);
        email.list_unsubscribe = Some(config.links(&token)?);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use chrono::NaiveTime;
    use chrono_tz::{America, Europe};

    use super::*;
    use crate::store::{OptOut, PreferenceChange};

    fn hours(start: (u32, u32), end: (u32, u32), tz: Tz) -> QuietHours {
        QuietHours::new(
            NaiveTime::from_hms_opt(start.0, start.1, 0).unwrap(),
            NaiveTime::from_hms_opt(end.0, end.1, 0).unwrap(),
            tz,
        )
    }

    fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, 0).unwrap()
    }

    #[test]
    fn a_window_across_midnight_ends_the_next_morning_or_the_same_morning() {
        let nights = hours((22, 0), (7, 0), Europe::Berlin);
        // 23:00 CET → 07:00 CET next day.
        assert_eq!(
            next_allowed(utc(2026, 1, 15, 22, 0), &nights),
            Some(utc(2026, 1, 16, 6, 0))
        );
        // 03:00 CET → 07:00 CET same day.
        assert_eq!(
            next_allowed(utc(2026, 1, 16, 2, 0), &nights),
            Some(utc(2026, 1, 16, 6, 0))
        );
        // Noon: outside.
        assert_eq!(next_allowed(utc(2026, 1, 16, 11, 0), &nights), None);
        // The start is inside, the end outside.
        assert_eq!(
            next_allowed(utc(2026, 1, 15, 21, 0), &nights),
            Some(utc(2026, 1, 16, 6, 0))
        );
        assert_eq!(next_allowed(utc(2026, 1, 16, 6, 0), &nights), None);
        assert_eq!(
            next_allowed(utc(2026, 1, 16, 5, 59), &nights),
            Some(utc(2026, 1, 16, 6, 0))
        );
    }

    #[test]
    fn a_window_within_a_day_and_an_empty_window() {
        let lunch = hours((12, 0), (13, 30), America::New_York);
        // 12:15 EST = 17:15 UTC → 13:30 EST = 18:30 UTC.
        assert_eq!(
            next_allowed(utc(2026, 1, 15, 17, 15), &lunch),
            Some(utc(2026, 1, 15, 18, 30))
        );
        assert_eq!(next_allowed(utc(2026, 1, 15, 19, 0), &lunch), None);
        let empty = hours((8, 0), (8, 0), Europe::Berlin);
        assert_eq!(next_allowed(utc(2026, 1, 15, 7, 0), &empty), None);
    }

    #[test]
    fn the_night_of_spring_forward_ends_at_local_seven_one_hour_sooner_in_utc() {
        // Europe/Berlin springs forward on 2026-03-29 at 02:00 CET → 03:00 CEST.
        let nights = hours((22, 0), (7, 0), Europe::Berlin);
        // 23:00 CET on the 28th → 07:00 CEST (UTC+2) = 05:00 UTC.
        assert_eq!(
            next_allowed(utc(2026, 3, 28, 22, 0), &nights),
            Some(utc(2026, 3, 29, 5, 0))
        );
    }

    #[test]
    fn an_end_inside_the_spring_forward_gap_is_the_instant_of_the_jump() {
        // 02:30 does not exist in Berlin on 2026-03-29: the window ends when
        // the clocks jump from 02:00 CET to 03:00 CEST, 01:00 UTC.
        let nights = hours((23, 0), (2, 30), Europe::Berlin);
        // 01:30 CET = 00:30 UTC.
        assert_eq!(
            next_allowed(utc(2026, 3, 29, 0, 30), &nights),
            Some(utc(2026, 3, 29, 1, 0))
        );
        // Just after the jump (03:00 CEST) it is over.
        assert_eq!(next_allowed(utc(2026, 3, 29, 1, 0), &nights), None);
    }

    #[test]
    fn the_night_of_fall_back_ends_at_local_seven_one_hour_later_in_utc() {
        // Europe/Berlin falls back on 2026-10-25 at 03:00 CEST → 02:00 CET.
        let nights = hours((22, 0), (7, 0), Europe::Berlin);
        // 23:00 CEST on the 24th = 21:00 UTC → 07:00 CET = 06:00 UTC.
        assert_eq!(
            next_allowed(utc(2026, 10, 24, 21, 0), &nights),
            Some(utc(2026, 10, 25, 6, 0))
        );
    }

    #[test]
    fn an_end_inside_the_fall_back_overlap_is_its_next_occurrence() {
        // 02:30 happens twice in Berlin on 2026-10-25: 00:30 UTC (CEST) and
        // 01:30 UTC (CET).
        let nights = hours((22, 0), (2, 30), Europe::Berlin);
        // 02:15 CEST = 00:15 UTC → the first 02:30.
        assert_eq!(
            next_allowed(utc(2026, 10, 25, 0, 15), &nights),
            Some(utc(2026, 10, 25, 0, 30))
        );
        // 02:45 CEST = 00:45 UTC: past the end.
        assert_eq!(next_allowed(utc(2026, 10, 25, 0, 45), &nights), None);
        // 02:15 CET = 01:15 UTC: quiet again, until the second 02:30.
        assert_eq!(
            next_allowed(utc(2026, 10, 25, 1, 15), &nights),
            Some(utc(2026, 10, 25, 1, 30))
        );
    }

    #[test]
    fn critical_bypasses_opt_outs_and_quiet_hours_and_others_are_skipped_or_deferred() {
        let policy = PreferencePolicy::new().with_critical("security");
        let mut prefs = Preferences::new("u1");
        prefs.apply(&PreferenceChange::opt_out(OptOut::everything()));
        let night = utc(2026, 1, 15, 23, 0);
        assert_eq!(
            decide(
                &policy,
                &prefs,
                Some("security"),
                NotificationKind::Email,
                night,
                false
            ),
            Decision::Send
        );
        assert!(matches!(
            decide(
                &policy,
                &prefs,
                Some("marketing"),
                NotificationKind::Email,
                night,
                false
            ),
            Decision::Skip { .. }
        ));
        let mut prefs = Preferences::new("u1");
        prefs.apply(&PreferenceChange::QuietHours(Some(hours(
            (22, 0),
            (7, 0),
            Europe::Berlin,
        ))));
        assert_eq!(
            decide(
                &policy,
                &prefs,
                Some("marketing"),
                NotificationKind::Email,
                night,
                false
            ),
            Decision::Defer {
                at: utc(2026, 1, 16, 6, 0)
            }
        );
        // Back from its delay: sent, not held again.
        assert_eq!(
            decide(
                &policy,
                &prefs,
                Some("marketing"),
                NotificationKind::Email,
                night,
                true
            ),
            Decision::Send
        );
        assert_eq!(
            decide(
                &policy,
                &prefs,
                Some("security"),
                NotificationKind::Email,
                night,
                false
            ),
            Decision::Send
        );
    }
}
