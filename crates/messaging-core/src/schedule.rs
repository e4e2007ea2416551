//! Periodic jobs: schedules that publish a message to a topic at each tick, once
//! across every process that runs a [`Scheduler`].
//!
//! A [`Schedule`] names a topic, a payload and when it ticks: a cron expression
//! (with optional seconds, in an IANA time zone) or a fixed interval (ticks at
//! whole multiples of it since the Unix epoch, so every process agrees on them).
//! Schedules are kept in the backend ([`ScheduleBackend`]) and changed at run
//! time. Any number of processes may run a scheduler over the same backend:
//! each tick is **claimed** by [`ScheduleBackend::fire_tick`], which publishes
//! the tick's message and moves the schedule's high-water mark past the tick in
//! one atomic step, so a tick is published exactly once, and never a tick older
//! than one already published. There is no leader and no lease that a pause
//! could let two processes hold.
//!
//! Ticks missed while no scheduler ran follow the schedule's [`MissedTicks`].
//!
//! ```
//! use std::time::Duration;
//! use messaging_core::schedule::{MissedTicks, Schedule};
//!
//! let nightly = Schedule::cron("nightly-digest", "digest.run", "0 30 2 * * *", serde_json::json!({}))
//!     .unwrap()
//!     .in_time_zone("Europe/Berlin")
//!     .unwrap()
//!     .with_missed(MissedTicks::CatchUpOne);
//! let tick = nightly
//!     .next_tick_after("2026-03-28T12:00:00Z".parse().unwrap())
//!     .unwrap();
//! assert_eq!(tick.to_rfc3339(), "2026-03-29T01:00:00+00:00", "03:00 CEST: the gap of spring forward");
//!
//! let heartbeat = Schedule::interval("heartbeat", "ops.heartbeat", Duration::from_secs(10), serde_json::json!({})).unwrap();
//! let tick = heartbeat.next_tick_after("2026-01-01T00:00:04Z".parse().unwrap()).unwrap();
//! assert_eq!(tick.to_rfc3339(), "2026-01-01T00:00:10+00:00");
//! ```

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, TimeDelta, Utc};
use messaging_model::Message;
use serde::{Deserialize, Serialize};
use thiserror::Error;
use tokio::sync::watch;
use tracing::{debug, warn};

use crate::BackendError;

/// Metadata key of a tick's message: the schedule's name.
pub const SCHEDULE_KEY: &str = "schedule";
/// Metadata key of a tick's message: the tick, RFC 3339 in UTC.
pub const SCHEDULE_TICK_KEY: &str = "schedule_tick";

/// Longest schedule name.
pub const MAX_SCHEDULE_NAME_LEN: usize = 128;
/// Shortest interval of an interval schedule.
pub const MIN_INTERVAL: Duration = Duration::from_secs(1);
/// The default [`Schedule::grace`].
pub const DEFAULT_GRACE: Duration = Duration::from_secs(60);

/// A schedule could not be made as asked.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ScheduleError {
    /// The name is empty, too long, or holds other than `[A-Za-z0-9._-]`.
    #[error("invalid schedule name {name:?}: 1 to 128 of [A-Za-z0-9._-]")]
    InvalidName {
        /// The name given.
        name: String,
    },
    /// The topic or payload breaks the model's rules.
    #[error("invalid schedule message: {0}")]
    InvalidMessage(#[from] messaging_model::ValidationError),
    /// The cron expression does not parse.
    #[error("invalid cron expression {expression:?}: {reason}")]
    InvalidCron {
        /// The expression given.
        expression: String,
        /// Why.
        reason: String,
    },
    /// No such IANA time zone.
    #[error("unknown time zone {name:?} (an IANA name such as Europe/Berlin)")]
    UnknownTimeZone {
        /// The name given.
        name: String,
    },
    /// The interval is under [`MIN_INTERVAL`] or not a whole number of milliseconds.
    #[error("invalid interval {interval:?}: at least 1 s, in whole milliseconds")]
    InvalidInterval {
        /// The interval given.
        interval: Duration,
    },
}

/// What a scheduler does with ticks that came and went while no scheduler ran
/// (found later than [`Schedule::grace`] after their time).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MissedTicks {
    /// Publish none of them; go on with the next tick (the default).
    #[default]
    Skip,
    /// Publish the latest of them once, late; skip the others.
    CatchUpOne,
}

impl MissedTicks {
    /// The name used in configuration and the CLI (`skip`, `catch_up_one`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Skip => "skip",
            Self::CatchUpOne => "catch_up_one",
        }
    }
}

/// When a schedule ticks.
#[derive(Debug, Clone)]
pub enum Every {
    /// At each occurrence of a cron expression (5 fields, or 6 with seconds
    /// first), in the schedule's time zone.
    Cron(Box<CronExpression>),
    /// At each whole multiple of this interval since the Unix epoch.
    Interval(Duration),
}

impl PartialEq for Every {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Self::Cron(a), Self::Cron(b)) => a.text == b.text,
            (Self::Interval(a), Self::Interval(b)) => a == b,
            _ => false,
        }
    }
}

/// A parsed cron expression, kept with its text.
#[derive(Debug, Clone)]
pub struct CronExpression {
    text: String,
    cron: croner::Cron,
}

impl CronExpression {
    /// Parses `text`: `sec min hour day-of-month month day-of-week` (the seconds
    /// field may be left out), with the usual `*`, `,`, `-`, `/`, names and `L`/`#`.
    pub fn parse(text: &str) -> Result<Self, ScheduleError> {
        let cron = croner::parser::CronParser::builder()
            .seconds(croner::parser::Seconds::Optional)
            .build()
            .parse(text)
            .map_err(|error| ScheduleError::InvalidCron {
                expression: text.to_owned(),
                reason: error.to_string(),
            })?;
        Ok(Self {
            text: text.to_owned(),
            cron,
        })
    }

    /// The expression as given.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

/// A periodic job: publish `payload` to `topic` at every tick.
///
/// Schedules are compared, stored and listed by name; saving one under a name
/// in use replaces it (its high-water mark stays, so ticks already published
/// are not published again).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "ScheduleRecord", into = "ScheduleRecord")]
#[non_exhaustive]
pub struct Schedule {
    /// Unique name, 1 to 128 of `[A-Za-z0-9._-]`.
    pub name: String,
    /// Where each tick's message goes.
    pub topic: String,
    /// Each tick's payload (its metadata says the schedule and the tick).
    pub payload: serde_json::Value,
    /// When it ticks.
    pub every: Every,
    /// The time zone of a cron expression (UTC by default; intervals ignore it).
    pub time_zone: chrono_tz::Tz,
    /// What to do with ticks missed while no scheduler ran.
    pub missed: MissedTicks,
    /// How late a tick may be found and still count as on time (default 60 s).
    pub grace: Duration,
    /// A paused schedule publishes nothing; its ticks meanwhile are missed.
    pub paused: bool,
    /// When it was first made: no tick before it is published.
    pub created_at: DateTime<Utc>,
}

impl Schedule {
    fn new(
        name: &str,
        topic: &str,
        every: Every,
        payload: serde_json::Value,
    ) -> Result<Self, ScheduleError> {
        validate_schedule_name(name)?;
        messaging_model::validate_topic(topic)?;
        messaging_model::validate_payload(&payload)?;
        Ok(Self {
            name: name.to_owned(),
            topic: topic.to_owned(),
            payload,
            every,
            time_zone: chrono_tz::UTC,
            missed: MissedTicks::default(),
            grace: DEFAULT_GRACE,
            paused: false,
            created_at: Utc::now(),
        })
    }

    /// A schedule ticking at each occurrence of a cron expression (UTC until
    /// [`in_time_zone`](Self::in_time_zone)).
    pub fn cron(
        name: &str,
        topic: &str,
        expression: &str,
        payload: serde_json::Value,
    ) -> Result<Self, ScheduleError> {
        Self::new(
            name,
            topic,
            Every::Cron(Box::new(CronExpression::parse(expression)?)),
            payload,
        )
    }

    /// A schedule ticking every `interval` (at least [`MIN_INTERVAL`], whole
    /// milliseconds), aligned on the Unix epoch.
    pub fn interval(
        name: &str,
        topic: &str,
        interval: Duration,
        payload: serde_json::Value,
    ) -> Result<Self, ScheduleError> {
        check_interval(interval)?;
        Self::new(name, topic, Every::Interval(interval), payload)
    }

    /// Sets the time zone of the cron expression (an IANA name).
    pub fn in_time_zone(mut self, name: &str) -> Result<Self, ScheduleError> {
        self.time_zone = name.parse().map_err(|_| ScheduleError::UnknownTimeZone {
            name: name.to_owned(),
        })?;
        Ok(self)
    }

    /// Sets what happens to missed ticks.
    pub fn with_missed(mut self, missed: MissedTicks) -> Self {
        self.missed = missed;
        self
    }

    /// Sets how late a tick may be found and still be on time.
    pub fn with_grace(mut self, grace: Duration) -> Self {
        self.grace = grace;
        self
    }

    /// Makes it paused (or not).
    pub fn paused(mut self, paused: bool) -> Self {
        self.paused = paused;
        self
    }

    /// The first tick strictly after `after`, if there is one.
    pub fn next_tick_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match &self.every {
            Every::Cron(cron) => cron
                .cron
                .find_next_occurrence(&after.with_timezone(&self.time_zone), false)
                .ok()
                .map(|tick| tick.with_timezone(&Utc)),
            Every::Interval(interval) => {
                let step = interval_millis(*interval);
                let now = after.timestamp_millis();
                let next = now.div_euclid(step).checked_add(1)?.checked_mul(step)?;
                DateTime::from_timestamp_millis(next)
            }
        }
    }

    /// The last tick at or before `at`, if there is one.
    pub fn last_tick_at_or_before(&self, at: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match &self.every {
            Every::Cron(cron) => cron
                .cron
                .find_previous_occurrence(&at.with_timezone(&self.time_zone), true)
                .ok()
                .map(|tick| tick.with_timezone(&Utc)),
            Every::Interval(interval) => {
                let step = interval_millis(*interval);
                let floor = at.timestamp_millis().div_euclid(step).checked_mul(step)?;
                DateTime::from_timestamp_millis(floor)
            }
        }
    }

    /// The message of one tick: the payload, with the schedule's name and the
    /// tick in its metadata ([`SCHEDULE_KEY`], [`SCHEDULE_TICK_KEY`]).
    pub fn message_for(&self, tick: DateTime<Utc>) -> Result<Message, ScheduleError> {
        Ok(Message::new(&self.topic, self.payload.clone())?
            .with_metadata(SCHEDULE_KEY, &self.name)
            .with_metadata(
                SCHEDULE_TICK_KEY,
                tick.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            ))
    }

    /// What a scheduler does now, at `now`, given the last tick published
    /// (`None`: none yet).
    pub fn decide(&self, last: Option<DateTime<Utc>>, now: DateTime<Utc>) -> Decision {
        if self.paused {
            return Decision::Wait;
        }
        // Nothing before the schedule existed, nothing twice.
        let after = match last {
            Some(last) => last.max(self.created_at - TimeDelta::milliseconds(1)),
            None => self.created_at - TimeDelta::milliseconds(1),
        };
        let Some(latest) = self.last_tick_at_or_before(now) else {
            return Decision::Wait;
        };
        if latest <= after {
            return Decision::Wait;
        }
        let late = (now - latest).to_std().unwrap_or_default();
        if late <= self.grace || self.missed == MissedTicks::CatchUpOne {
            Decision::Fire(latest)
        } else {
            Decision::Skip(latest)
        }
    }
}

/// What [`Schedule::decide`] says to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Nothing is due.
    Wait,
    /// Publish this tick (claiming it, and every earlier one).
    Fire(DateTime<Utc>),
    /// Move the mark to this tick without publishing (missed ticks under
    /// [`MissedTicks::Skip`]).
    Skip(DateTime<Utc>),
}

fn interval_millis(interval: Duration) -> i64 {
    i64::try_from(interval.as_millis())
        .unwrap_or(i64::MAX)
        .max(1)
}

fn check_interval(interval: Duration) -> Result<(), ScheduleError> {
    if interval < MIN_INTERVAL || !interval.subsec_nanos().is_multiple_of(1_000_000) {
        return Err(ScheduleError::InvalidInterval { interval });
    }
    Ok(())
}

/// Checks a schedule name: 1 to [`MAX_SCHEDULE_NAME_LEN`] of `[A-Za-z0-9._-]`.
pub fn validate_schedule_name(name: &str) -> Result<(), ScheduleError> {
    let valid = !name.is_empty()
        && name.len() <= MAX_SCHEDULE_NAME_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if valid {
        Ok(())
    } else {
        Err(ScheduleError::InvalidName {
            name: name.chars().take(MAX_SCHEDULE_NAME_LEN + 8).collect(),
        })
    }
}

/// A schedule as stored (JSON).
#[derive(Serialize, Deserialize)]
struct ScheduleRecord {
    name: String,
    topic: String,
    payload: serde_json::Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    cron: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    every_ms: Option<u64>,
    time_zone: String,
    missed: MissedTicks,
    grace_ms: u64,
    paused: bool,
    created_at: DateTime<Utc>,
}

impl From<Schedule> for ScheduleRecord {
    fn from(schedule: Schedule) -> Self {
        let (cron, every_ms) = match &schedule.every {
            Every::Cron(cron) => (Some(cron.text.clone()), None),
            Every::Interval(interval) => (None, Some(interval_millis(*interval) as u64)),
        };
        Self {
            name: schedule.name,
            topic: schedule.topic,
            payload: schedule.payload,
            cron,
            every_ms,
            time_zone: schedule.time_zone.name().to_owned(),
            missed: schedule.missed,
            grace_ms: u64::try_from(schedule.grace.as_millis()).unwrap_or(u64::MAX),
            paused: schedule.paused,
            created_at: schedule.created_at,
        }
    }
}

impl TryFrom<ScheduleRecord> for Schedule {
    type Error = ScheduleError;

    fn try_from(record: ScheduleRecord) -> Result<Self, ScheduleError> {
        let every = match (record.cron, record.every_ms) {
            (Some(cron), None) => Every::Cron(Box::new(CronExpression::parse(&cron)?)),
            (None, Some(ms)) => {
                let interval = Duration::from_millis(ms);
                check_interval(interval)?;
                Every::Interval(interval)
            }
            _ => {
                return Err(ScheduleError::InvalidCron {
                    expression: String::new(),
                    reason: "a schedule has either `cron` or `every_ms`".into(),
                });
            }
        };
        let mut schedule = Self::new(&record.name, &record.topic, every, record.payload)?
            .in_time_zone(&record.time_zone)?
            .with_missed(record.missed)
            .with_grace(Duration::from_millis(record.grace_ms))
            .paused(record.paused);
        schedule.created_at = record.created_at;
        Ok(schedule)
    }
}

/// A schedule with the last tick published for it.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ScheduleState {
    /// The schedule.
    pub schedule: Schedule,
    /// Its high-water mark: the last tick published (or skipped); `None` before
    /// the first.
    pub last_tick: Option<DateTime<Utc>>,
}

impl ScheduleState {
    /// A state.
    pub fn new(schedule: Schedule, last_tick: Option<DateTime<Utc>>) -> Self {
        Self {
            schedule,
            last_tick,
        }
    }
}

/// Where schedules are kept and ticks claimed: implemented by the in-memory and
/// Redis backends, pinned down by the conformance suite.
#[async_trait]
pub trait ScheduleBackend: Send + Sync + 'static {
    /// Stores `schedule`, replacing the one with its name (its mark stays).
    async fn save_schedule(&self, schedule: &Schedule) -> Result<(), BackendError>;

    /// Removes a schedule (and its mark); false when there was none.
    async fn remove_schedule(&self, name: &str) -> Result<bool, BackendError>;

    /// Every schedule with its mark, by name.
    async fn schedules(&self) -> Result<Vec<ScheduleState>, BackendError>;

    /// Pauses or resumes a schedule; false when there is none.
    async fn set_schedule_paused(&self, name: &str, paused: bool) -> Result<bool, BackendError>;

    /// Publishes `message` as tick `tick` of `schedule`, unless that tick or a
    /// later one was published or skipped already; the publish and the move of
    /// the schedule's mark to `tick` are one atomic step. True when this call
    /// published. A full topic is [`BackendError::QueueFull`] and moves nothing.
    async fn fire_tick(
        &self,
        schedule: &Schedule,
        tick: DateTime<Utc>,
        message: &Message,
    ) -> Result<bool, BackendError>;

    /// Moves the schedule's mark to `tick` without publishing, unless it is
    /// there or later already; true when it moved.
    async fn skip_to_tick(
        &self,
        schedule: &Schedule,
        tick: DateTime<Utc>,
    ) -> Result<bool, BackendError>;
}

/// Settings of a [`Scheduler`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct SchedulerOptions {
    /// How often schedules are re-read from the backend (changes, pauses and
    /// other processes' ticks are seen within this).
    pub refresh: Duration,
}

impl Default for SchedulerOptions {
    /// Re-read every second.
    fn default() -> Self {
        Self {
            refresh: Duration::from_secs(1),
        }
    }
}

impl SchedulerOptions {
    /// Sets how often schedules are re-read.
    pub fn with_refresh(mut self, refresh: Duration) -> Self {
        self.refresh = refresh.max(Duration::from_millis(10));
        self
    }
}

/// Counts of what a scheduler did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SchedulerStats {
    /// Ticks this scheduler published.
    pub fired: u64,
    /// Ticks another process had published first.
    pub lost: u64,
    /// Missed ticks skipped.
    pub skipped: u64,
}

/// Runs the schedules of a backend: at each tick it claims and publishes the
/// tick's message; any number of schedulers may run over one backend.
///
/// ```
/// use std::sync::Arc;
/// use std::time::Duration;
/// use messaging_core::InMemoryBackend;
/// use messaging_core::schedule::{Schedule, ScheduleBackend, Scheduler, SchedulerOptions};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let backend = Arc::new(InMemoryBackend::new());
/// backend.save_schedule(&Schedule::interval("tick", "ops.tick", Duration::from_secs(1), serde_json::json!({})).unwrap()).await.unwrap();
/// let scheduler = Scheduler::start(backend.clone(), SchedulerOptions::default());
/// scheduler.stop().await;
/// # }
/// ```
pub struct Scheduler {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<SchedulerStats>,
}

impl std::fmt::Debug for Scheduler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scheduler").finish_non_exhaustive()
    }
}

impl Scheduler {
    /// Starts a scheduler task over `backend`.
    pub fn start(backend: Arc<dyn ScheduleBackend>, options: SchedulerOptions) -> Self {
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(run(backend, options, stopped));
        Self { stop, task }
    }

    /// Stops it (a tick being published is finished first) and returns what it did.
    pub async fn stop(self) -> SchedulerStats {
        let _ = self.stop.send(true);
        self.task.await.unwrap_or_default()
    }
}

async fn run(
    backend: Arc<dyn ScheduleBackend>,
    options: SchedulerOptions,
    mut stopped: watch::Receiver<bool>,
) -> SchedulerStats {
    let mut stats = SchedulerStats::default();
    loop {
        if *stopped.borrow() {
            return stats;
        }
        let now = Utc::now();
        let mut wake = now + TimeDelta::from_std(options.refresh).unwrap_or(TimeDelta::seconds(1));
        match backend.schedules().await {
            Ok(states) => {
                for state in &states {
                    run_one(&*backend, state, now, &mut stats).await;
                    if !state.schedule.paused
                        && let Some(next) = state.schedule.next_tick_after(now)
                    {
                        wake = wake.min(next);
                    }
                }
            }
            Err(error) => warn!(%error, "schedules could not be read; trying again"),
        }
        let sleep = (wake - Utc::now()).to_std().unwrap_or_default();
        tokio::select! {
            () = tokio::time::sleep(sleep) => {}
            _ = stopped.changed() => {}
        }
    }
}

async fn run_one(
    backend: &dyn ScheduleBackend,
    state: &ScheduleState,
    now: DateTime<Utc>,
    stats: &mut SchedulerStats,
) {
    let schedule = &state.schedule;
    match schedule.decide(state.last_tick, now) {
        Decision::Wait => {}
        Decision::Fire(tick) => {
            let message = match schedule.message_for(tick) {
                Ok(message) => message,
                Err(error) => {
                    warn!(schedule = %schedule.name, %error, "tick message refused");
                    return;
                }
            };
            match backend.fire_tick(schedule, tick, &message).await {
                Ok(true) => {
                    stats.fired += 1;
                    metrics::counter!("messaging_schedule_ticks_total", "schedule" => schedule.name.clone()).increment(1);
                    debug!(schedule = %schedule.name, %tick, "tick published");
                }
                Ok(false) => stats.lost += 1,
                Err(error) => {
                    warn!(schedule = %schedule.name, %tick, %error, "tick not published; trying again")
                }
            }
        }
        Decision::Skip(tick) => match backend.skip_to_tick(schedule, tick).await {
            Ok(true) => {
                stats.skipped += 1;
                warn!(schedule = %schedule.name, %tick, "missed ticks skipped (missed = skip)");
            }
            Ok(false) => {}
            Err(error) => warn!(schedule = %schedule.name, %error, "missed ticks not skipped"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn at(text: &str) -> DateTime<Utc> {
        text.parse().unwrap()
    }

    #[test]
    fn names_and_specs_are_checked() {
        assert!(matches!(
            Schedule::interval("a b", "t", Duration::from_secs(1), json!({})),
            Err(ScheduleError::InvalidName { .. })
        ));
        assert!(matches!(
            Schedule::cron("a", "t", "61 * * * *", json!({})),
            Err(ScheduleError::InvalidCron { .. })
        ));
        assert!(matches!(
            Schedule::interval("a", "t", Duration::from_millis(500), json!({})),
            Err(ScheduleError::InvalidInterval { .. })
        ));
        assert!(matches!(
            Schedule::interval("a", "t", Duration::from_secs(1), json!({}))
                .unwrap()
                .in_time_zone("Mars/Olympus"),
            Err(ScheduleError::UnknownTimeZone { .. })
        ));
        assert!(matches!(
            Schedule::interval("a", "bad topic", Duration::from_secs(1), json!({})),
            Err(ScheduleError::InvalidMessage(_))
        ));
    }

    #[test]
    fn spring_forward_fires_a_fixed_time_in_the_gap_once_right_after_it() {
        // Europe/Berlin, 2026-03-29: 02:00 CET jumps to 03:00 CEST.
        let job = Schedule::cron("a", "t", "0 30 2 * * *", json!({}))
            .unwrap()
            .in_time_zone("Europe/Berlin")
            .unwrap();
        let ticks: Vec<String> =
            std::iter::successors(job.next_tick_after(at("2026-03-27T12:00:00Z")), |t| {
                job.next_tick_after(*t)
            })
            .take(3)
            .map(|t| t.to_rfc3339())
            .collect();
        assert_eq!(
            ticks,
            [
                "2026-03-28T01:30:00+00:00", // 02:30 CET
                "2026-03-29T01:00:00+00:00", // 03:00 CEST: once, right after the gap
                "2026-03-30T00:30:00+00:00", // 02:30 CEST
            ]
        );
    }

    #[test]
    fn fall_back_fires_a_fixed_time_in_the_repeated_hour_once() {
        // Europe/Berlin, 2026-10-25: 03:00 CEST goes back to 02:00 CET.
        let job = Schedule::cron("a", "t", "0 30 2 * * *", json!({}))
            .unwrap()
            .in_time_zone("Europe/Berlin")
            .unwrap();
        let ticks: Vec<String> =
            std::iter::successors(job.next_tick_after(at("2026-10-24T12:00:00Z")), |t| {
                job.next_tick_after(*t)
            })
            .take(2)
            .map(|t| t.to_rfc3339())
            .collect();
        assert_eq!(
            ticks,
            ["2026-10-25T00:30:00+00:00", "2026-10-26T01:30:00+00:00"],
            "02:30 CEST only, not 02:30 CET again"
        );
    }

    #[test]
    fn interval_ticks_are_aligned_on_the_epoch() {
        let job = Schedule::interval("a", "t", Duration::from_secs(15), json!({})).unwrap();
        assert_eq!(
            job.next_tick_after(at("2026-01-01T00:00:15Z")),
            Some(at("2026-01-01T00:00:30Z"))
        );
        assert_eq!(
            job.last_tick_at_or_before(at("2026-01-01T00:00:29.999Z")),
            Some(at("2026-01-01T00:00:15Z"))
        );
    }

    #[test]
    fn missed_ticks_are_skipped_or_caught_up_once() {
        let mut job = Schedule::interval("a", "t", Duration::from_secs(10), json!({})).unwrap();
        job.created_at = at("2026-01-01T00:00:00Z");
        // On time: fire.
        assert_eq!(
            job.decide(
                Some(at("2026-01-01T00:00:00Z")),
                at("2026-01-01T00:00:10.2Z")
            ),
            Decision::Fire(at("2026-01-01T00:00:10Z"))
        );
        // Nothing ran for an hour: the latest tick is found 5 s late, within grace.
        assert_eq!(
            job.decide(Some(at("2026-01-01T00:00:00Z")), at("2026-01-01T01:00:05Z")),
            Decision::Fire(at("2026-01-01T01:00:00Z"))
        );
        // A long tick period found late: skipped, or caught up once.
        let mut daily = Schedule::cron("d", "t", "0 0 3 * * *", json!({})).unwrap();
        daily.created_at = at("2026-01-01T00:00:00Z");
        let late = at("2026-01-05T12:00:00Z");
        assert_eq!(
            daily.decide(Some(at("2026-01-02T03:00:00Z")), late),
            Decision::Skip(at("2026-01-05T03:00:00Z"))
        );
        let daily = daily.with_missed(MissedTicks::CatchUpOne);
        assert_eq!(
            daily.decide(Some(at("2026-01-02T03:00:00Z")), late),
            Decision::Fire(at("2026-01-05T03:00:00Z"))
        );
        // Already published, paused, or before the schedule existed: wait.
        assert_eq!(
            daily.decide(Some(at("2026-01-05T03:00:00Z")), late),
            Decision::Wait
        );
        assert_eq!(
            daily.clone().paused(true).decide(None, late),
            Decision::Wait
        );
        assert_eq!(
            daily.decide(None, at("2025-12-31T23:00:00Z")),
            Decision::Wait
        );
    }

    #[test]
    fn a_schedule_survives_its_json() {
        let job = Schedule::cron("n", "t.x", "*/5 * * * * *", json!({"a": 1}))
            .unwrap()
            .in_time_zone("America/New_York")
            .unwrap()
            .with_missed(MissedTicks::CatchUpOne);
        let back: Schedule = serde_json::from_value(serde_json::to_value(&job).unwrap()).unwrap();
        assert_eq!(back, job);
        let bad = json!({"name": "n", "topic": "t", "payload": {}, "time_zone": "UTC",
            "missed": "skip", "grace_ms": 1, "paused": false, "created_at": "2026-01-01T00:00:00Z"});
        assert!(serde_json::from_value::<Schedule>(bad).is_err());
    }
}
