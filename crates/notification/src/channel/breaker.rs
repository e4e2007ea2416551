//! [`CircuitBreaker`]: a pure state machine (closed, open, half-open) guarding
//! one provider, with an injectable [`Clock`].

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Where the time comes from: [`SystemClock`] in production, [`ManualClock`]
/// in tests.
pub trait Clock: Send + Sync + 'static {
    /// Now, monotonic.
    fn now(&self) -> Instant;
}

/// The process's monotonic clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }
}

/// A clock that moves only when told to, shared by its clones.
///
/// ```
/// use std::time::Duration;
/// use notification::channel::{Clock, ManualClock};
/// let clock = ManualClock::new();
/// let start = clock.now();
/// clock.advance(Duration::from_secs(30));
/// assert_eq!(clock.now() - start, Duration::from_secs(30));
/// ```
#[derive(Debug, Clone)]
pub struct ManualClock {
    now: Arc<Mutex<Instant>>,
}

impl Default for ManualClock {
    fn default() -> Self {
        Self::new()
    }
}

impl ManualClock {
    /// A clock stopped at the current instant.
    pub fn new() -> Self {
        Self {
            now: Arc::new(Mutex::new(Instant::now())),
        }
    }

    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: Duration) {
        let mut now = self.now.lock().unwrap_or_else(|p| p.into_inner());
        *now += by;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Instant {
        *self.now.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// When a breaker opens and how it closes again.
///
/// ```
/// use std::time::Duration;
/// use notification::channel::CircuitBreakerConfig;
/// let config = CircuitBreakerConfig::default()
///     .with_failure_threshold(3)
///     .with_failure_rate(0.5, 10)
///     .with_cool_down(Duration::from_secs(30))
///     .with_half_open_probes(1);
/// assert_eq!(config.failure_threshold, 3);
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct CircuitBreakerConfig {
    /// Consecutive transient failures that open it (at least 1).
    pub failure_threshold: u32,
    /// Also open when at least this share (0 to 1) of the last
    /// `rate_window` calls failed (`None`: no rate rule).
    pub failure_rate: Option<f64>,
    /// How many recent calls the rate is measured over (and must have been
    /// made before it applies).
    pub rate_window: u32,
    /// How long it stays open before letting probes through.
    pub cool_down: Duration,
    /// Probes let through at once when half-open; that many successes close it.
    pub half_open_probes: u32,
}

impl Default for CircuitBreakerConfig {
    /// 5 consecutive failures, no rate rule (window 20), 30 s cool-down, 1 probe.
    fn default() -> Self {
        Self {
            failure_threshold: 5,
            failure_rate: None,
            rate_window: 20,
            cool_down: Duration::from_secs(30),
            half_open_probes: 1,
        }
    }
}

impl CircuitBreakerConfig {
    /// Sets the consecutive failures that open it (at least 1).
    pub fn with_failure_threshold(mut self, failures: u32) -> Self {
        self.failure_threshold = failures.max(1);
        self
    }

    /// Opens it also when `rate` (clamped to 0..=1) of the last `window` calls failed.
    pub fn with_failure_rate(mut self, rate: f64, window: u32) -> Self {
        self.failure_rate = Some(if rate.is_nan() {
            1.0
        } else {
            rate.clamp(0.0, 1.0)
        });
        self.rate_window = window.max(1);
        self
    }

    /// Sets the cool-down.
    pub fn with_cool_down(mut self, cool_down: Duration) -> Self {
        self.cool_down = cool_down;
        self
    }

    /// Sets the probes of the half-open state (at least 1).
    pub fn with_half_open_probes(mut self, probes: u32) -> Self {
        self.half_open_probes = probes.max(1);
        self
    }
}

/// The state of a breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum BreakerState {
    /// Calls go through.
    Closed,
    /// Calls are refused until the cool-down has passed.
    Open,
    /// A few probe calls go through; success closes it, failure opens it again.
    HalfOpen,
}

impl BreakerState {
    /// `closed`, `open`, `half_open`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Closed => "closed",
            Self::Open => "open",
            Self::HalfOpen => "half_open",
        }
    }

    /// The value of the state gauge: 0 closed, 1 half-open, 2 open.
    pub fn gauge(self) -> f64 {
        match self {
            Self::Closed => 0.0,
            Self::HalfOpen => 1.0,
            Self::Open => 2.0,
        }
    }
}

/// A change of state, as [`CircuitBreaker`] reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transition {
    /// Before.
    pub from: BreakerState,
    /// After.
    pub to: BreakerState,
}

struct Inner {
    state: BreakerState,
    consecutive_failures: u32,
    /// The last `rate_window` outcomes, `true` for a failure.
    recent: VecDeque<bool>,
    opened_at: Option<Instant>,
    probes_in_flight: u32,
    probe_successes: u32,
}

/// Guards one provider: closed (calls go through), open after
/// [`failure_threshold`](CircuitBreakerConfig::failure_threshold) consecutive
/// transient failures or the [`failure_rate`](CircuitBreakerConfig::failure_rate),
/// half-open after the cool-down (probes go through), closed again after the
/// probes succeed, open again when one fails.
///
/// Ask [`try_acquire`](Self::try_acquire) before a call; report its end with
/// [`on_success`](Self::on_success), [`on_failure`](Self::on_failure) (a
/// transient failure of the provider) or [`on_neutral`](Self::on_neutral) (an
/// outcome that says nothing of the provider's health). Each reports the
/// transition it caused, if any.
///
/// ```
/// use std::time::Duration;
/// use notification::channel::{BreakerState, CircuitBreaker, CircuitBreakerConfig, ManualClock};
/// let clock = ManualClock::new();
/// let breaker = CircuitBreaker::with_clock(
///     CircuitBreakerConfig::default().with_failure_threshold(2).with_cool_down(Duration::from_secs(10)),
///     clock.clone(),
/// );
/// for _ in 0..2 { assert!(breaker.try_acquire().is_ok()); breaker.on_failure(); }
/// assert_eq!(breaker.state(), BreakerState::Open);
/// assert!(breaker.try_acquire().is_err());
/// clock.advance(Duration::from_secs(10));
/// assert!(breaker.try_acquire().is_ok()); // the probe
/// breaker.on_success();
/// assert_eq!(breaker.state(), BreakerState::Closed);
/// ```
pub struct CircuitBreaker {
    config: CircuitBreakerConfig,
    clock: Arc<dyn Clock>,
    inner: Mutex<Inner>,
}

impl std::fmt::Debug for CircuitBreaker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CircuitBreaker")
            .field("config", &self.config)
            .field("state", &self.state())
            .finish()
    }
}

/// Why [`CircuitBreaker::try_acquire`] refused a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerOpen {
    /// How long until probes are let through (zero when half-open with every
    /// probe in flight).
    pub retry_in: Duration,
}

impl CircuitBreaker {
    /// A closed breaker on the system clock.
    pub fn new(config: CircuitBreakerConfig) -> Self {
        Self::with_clock(config, SystemClock)
    }

    /// A closed breaker on `clock`.
    pub fn with_clock(config: CircuitBreakerConfig, clock: impl Clock) -> Self {
        Self {
            config,
            clock: Arc::new(clock),
            inner: Mutex::new(Inner {
                state: BreakerState::Closed,
                consecutive_failures: 0,
                recent: VecDeque::new(),
                opened_at: None,
                probes_in_flight: 0,
                probe_successes: 0,
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The state now (an open breaker whose cool-down has passed reads
    /// `open` until a call asks for a probe).
    pub fn state(&self) -> BreakerState {
        self.lock().state
    }

    /// The configuration.
    pub fn config(&self) -> &CircuitBreakerConfig {
        &self.config
    }

    /// Whether a call may go through now, and the transition asking caused
    /// (open → half-open once the cool-down has passed).
    pub fn try_acquire(&self) -> Result<Option<Transition>, BreakerOpen> {
        let now = self.clock.now();
        let mut inner = self.lock();
        match inner.state {
            BreakerState::Closed => Ok(None),
            BreakerState::Open => {
                let opened_at = inner.opened_at.unwrap_or(now);
                let elapsed = now.saturating_duration_since(opened_at);
                if elapsed < self.config.cool_down {
                    return Err(BreakerOpen {
                        retry_in: self.config.cool_down - elapsed,
                    });
                }
                inner.state = BreakerState::HalfOpen;
                inner.probes_in_flight = 1;
                inner.probe_successes = 0;
                Ok(Some(Transition {
                    from: BreakerState::Open,
                    to: BreakerState::HalfOpen,
                }))
            }
            BreakerState::HalfOpen => {
                if inner.probes_in_flight >= self.config.half_open_probes.max(1) {
                    return Err(BreakerOpen {
                        retry_in: Duration::ZERO,
                    });
                }
                inner.probes_in_flight += 1;
                Ok(None)
            }
        }
    }

    /// The call succeeded.
    pub fn on_success(&self) -> Option<Transition> {
        let mut inner = self.lock();
        match inner.state {
            BreakerState::Closed => {
                inner.consecutive_failures = 0;
                self.remember(&mut inner, false);
                None
            }
            BreakerState::HalfOpen => {
                inner.probes_in_flight = inner.probes_in_flight.saturating_sub(1);
                inner.probe_successes += 1;
                if inner.probe_successes >= self.config.half_open_probes.max(1) {
                    Some(self.close(&mut inner))
                } else {
                    None
                }
            }
            // A call let through before it opened: no news.
            BreakerState::Open => None,
        }
    }

    /// The call failed in a way that counts against the provider (a
    /// transient failure: refused connection, 4xx, timeout, HTTP 5xx/429).
    pub fn on_failure(&self) -> Option<Transition> {
        let now = self.clock.now();
        let mut inner = self.lock();
        match inner.state {
            BreakerState::Closed => {
                inner.consecutive_failures = inner.consecutive_failures.saturating_add(1);
                self.remember(&mut inner, true);
                if inner.consecutive_failures >= self.config.failure_threshold.max(1)
                    || self.rate_exceeded(&inner)
                {
                    Some(self.open(&mut inner, now, BreakerState::Closed))
                } else {
                    None
                }
            }
            BreakerState::HalfOpen => Some(self.open(&mut inner, now, BreakerState::HalfOpen)),
            BreakerState::Open => None,
        }
    }

    /// The call ended in a way that says nothing of the provider's health (a
    /// permanent refusal of this message): a half-open probe is given back.
    pub fn on_neutral(&self) -> Option<Transition> {
        let mut inner = self.lock();
        if inner.state == BreakerState::HalfOpen {
            inner.probes_in_flight = inner.probes_in_flight.saturating_sub(1);
        }
        None
    }

    fn remember(&self, inner: &mut Inner, failed: bool) {
        if self.config.failure_rate.is_none() {
            return;
        }
        inner.recent.push_back(failed);
        while inner.recent.len() > self.config.rate_window.max(1) as usize {
            inner.recent.pop_front();
        }
    }

    fn rate_exceeded(&self, inner: &Inner) -> bool {
        let Some(rate) = self.config.failure_rate else {
            return false;
        };
        let window = self.config.rate_window.max(1) as usize;
        if inner.recent.len() < window {
            return false;
        }
        let failures = inner.recent.iter().filter(|failed| **failed).count();
        failures as f64 >= rate * window as f64
    }

    fn open(&self, inner: &mut Inner, now: Instant, from: BreakerState) -> Transition {
        inner.state = BreakerState::Open;
        inner.opened_at = Some(now);
        inner.probes_in_flight = 0;
        inner.probe_successes = 0;
        Transition {
            from,
            to: BreakerState::Open,
        }
    }

    fn close(&self, inner: &mut Inner) -> Transition {
        inner.state = BreakerState::Closed;
        inner.consecutive_failures = 0;
        inner.recent.clear();
        inner.opened_at = None;
        inner.probes_in_flight = 0;
        inner.probe_successes = 0;
        Transition {
            from: BreakerState::HalfOpen,
            to: BreakerState::Closed,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn breaker(config: CircuitBreakerConfig) -> (CircuitBreaker, ManualClock) {
        let clock = ManualClock::new();
        (CircuitBreaker::with_clock(config, clock.clone()), clock)
    }

    fn fail(breaker: &CircuitBreaker) -> Option<Transition> {
        breaker.try_acquire().expect("let through");
        breaker.on_failure()
    }

    #[test]
    fn opens_after_the_threshold_of_consecutive_failures_and_a_success_resets_the_count() {
        let (b, _) = breaker(CircuitBreakerConfig::default().with_failure_threshold(3));
        assert_eq!(fail(&b), None);
        assert_eq!(fail(&b), None);
        b.try_acquire().unwrap();
        b.on_success();
        assert_eq!(fail(&b), None);
        assert_eq!(fail(&b), None);
        assert_eq!(
            fail(&b),
            Some(Transition {
                from: BreakerState::Closed,
                to: BreakerState::Open
            })
        );
        assert_eq!(b.state(), BreakerState::Open);
    }

    #[test]
    fn open_refuses_until_the_cool_down_then_half_open_lets_the_probes_through() {
        let cool_down = Duration::from_secs(30);
        let (b, clock) = breaker(
            CircuitBreakerConfig::default()
                .with_failure_threshold(1)
                .with_cool_down(cool_down)
                .with_half_open_probes(2),
        );
        fail(&b);
        clock.advance(Duration::from_secs(29));
        assert_eq!(
            b.try_acquire(),
            Err(BreakerOpen {
                retry_in: Duration::from_secs(1)
            })
        );
        clock.advance(Duration::from_secs(1));
        assert_eq!(
            b.try_acquire(),
            Ok(Some(Transition {
                from: BreakerState::Open,
                to: BreakerState::HalfOpen
            }))
        );
        assert_eq!(b.try_acquire(), Ok(None), "the second probe");
        assert!(b.try_acquire().is_err(), "no third call while probing");
        assert_eq!(b.on_success(), None, "one of two probes");
        assert_eq!(
            b.on_success(),
            Some(Transition {
                from: BreakerState::HalfOpen,
                to: BreakerState::Closed
            })
        );
        assert_eq!(b.state(), BreakerState::Closed);
        assert_eq!(b.try_acquire(), Ok(None));
    }

    #[test]
    fn a_failed_probe_opens_it_again_for_a_whole_cool_down() {
        let (b, clock) = breaker(
            CircuitBreakerConfig::default()
                .with_failure_threshold(1)
                .with_cool_down(Duration::from_secs(10)),
        );
        fail(&b);
        clock.advance(Duration::from_secs(10));
        b.try_acquire().unwrap();
        assert_eq!(
            b.on_failure(),
            Some(Transition {
                from: BreakerState::HalfOpen,
                to: BreakerState::Open
            })
        );
        clock.advance(Duration::from_secs(9));
        assert!(b.try_acquire().is_err());
        clock.advance(Duration::from_secs(1));
        assert!(b.try_acquire().is_ok());
    }

    #[test]
    fn a_neutral_probe_is_given_back_without_closing() {
        let (b, clock) = breaker(CircuitBreakerConfig::default().with_failure_threshold(1));
        fail(&b);
        clock.advance(b.config().cool_down);
        b.try_acquire().unwrap();
        assert_eq!(b.on_neutral(), None);
        assert_eq!(b.state(), BreakerState::HalfOpen);
        assert!(b.try_acquire().is_ok(), "the probe was given back");
    }

    #[test]
    fn opens_on_the_failure_rate_over_the_window() {
        let (b, _) = breaker(
            CircuitBreakerConfig::default()
                .with_failure_threshold(100)
                .with_failure_rate(0.5, 4),
        );
        let succeed = |b: &CircuitBreaker| {
            b.try_acquire().unwrap();
            b.on_success()
        };
        succeed(&b);
        assert_eq!(fail(&b), None);
        succeed(&b);
        assert_eq!(
            fail(&b),
            Some(Transition {
                from: BreakerState::Closed,
                to: BreakerState::Open
            }),
            "2 failures in the last 4 calls"
        );
    }

    #[test]
    fn the_rate_rule_waits_for_a_full_window() {
        let (b, _) = breaker(
            CircuitBreakerConfig::default()
                .with_failure_threshold(100)
                .with_failure_rate(0.5, 10),
        );
        for _ in 0..4 {
            assert_eq!(fail(&b), None);
        }
        assert_eq!(b.state(), BreakerState::Closed);
    }
}
