use std::time::Duration;

/// Exponential backoff with jitter between the attempts of a failing message.
///
/// Attempt `n` (1 for the first retry) waits `initial_delay * multiplier^(n-1)`,
/// capped at `max_delay`, then shortened by a random fraction of at most `jitter`.
/// So every delay lies within [`RetryPolicy::bounds`], and replicas that failed
/// together do not retry together.
///
/// ```
/// use std::time::Duration;
/// use messaging_core::RetryPolicy;
///
/// let policy = RetryPolicy::exponential(Duration::from_millis(100), Duration::from_secs(10))
///     .with_jitter(0.25);
/// let (low, high) = policy.bounds(3);
/// assert_eq!(high, Duration::from_millis(400));
/// assert_eq!(low, Duration::from_millis(300));
/// let delay = policy.delay(3);
/// assert!(low <= delay && delay <= high);
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct RetryPolicy {
    /// Delay before the first retry.
    pub initial_delay: Duration,
    /// Longest delay between two attempts.
    pub max_delay: Duration,
    /// Growth factor from one attempt to the next (at least 1).
    pub multiplier: f64,
    /// Largest fraction (0 to 1) taken off a delay at random.
    pub jitter: f64,
}

impl Default for RetryPolicy {
    /// One second, doubling, capped at five minutes, 20 % jitter.
    fn default() -> Self {
        Self::exponential(Duration::from_secs(1), Duration::from_secs(300))
    }
}

impl RetryPolicy {
    /// Doubling delays from `initial_delay` up to `max_delay`, with 20 % jitter.
    pub fn exponential(initial_delay: Duration, max_delay: Duration) -> Self {
        Self {
            initial_delay,
            max_delay: max_delay.max(initial_delay),
            multiplier: 2.0,
            jitter: 0.2,
        }
    }

    /// Sets the growth factor (values below 1 are taken as 1).
    pub fn with_multiplier(mut self, multiplier: f64) -> Self {
        self.multiplier = if multiplier.is_finite() {
            multiplier.max(1.0)
        } else {
            1.0
        };
        self
    }

    /// Sets the jitter fraction, clamped to 0..=1.
    pub fn with_jitter(mut self, jitter: f64) -> Self {
        self.jitter = if jitter.is_finite() {
            jitter.clamp(0.0, 1.0)
        } else {
            0.0
        };
        self
    }

    /// The shortest and longest delay before retry number `attempt` (1-based).
    pub fn bounds(&self, attempt: u32) -> (Duration, Duration) {
        let exponent = attempt.saturating_sub(1).min(64) as i32;
        let base = self.initial_delay.as_secs_f64() * self.multiplier.powi(exponent);
        let high = base.min(self.max_delay.as_secs_f64());
        let low = high * (1.0 - self.jitter);
        (secs(low), secs(high))
    }

    /// A random delay within [`RetryPolicy::bounds`] for retry number `attempt`.
    pub fn delay(&self, attempt: u32) -> Duration {
        let (low, high) = self.bounds(attempt);
        let span = high.saturating_sub(low).as_secs_f64();
        low + secs(span * fastrand::f64())
    }
}

fn secs(value: f64) -> Duration {
    Duration::try_from_secs_f64(value).unwrap_or(Duration::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_exponentially_and_stop_at_the_cap() {
        let policy = RetryPolicy::exponential(Duration::from_millis(10), Duration::from_millis(50))
            .with_jitter(0.0);
        let delays: Vec<_> = (1..=5).map(|n| policy.delay(n).as_millis()).collect();
        assert_eq!(delays, vec![10, 20, 40, 50, 50]);
    }

    #[test]
    fn jittered_delays_stay_within_bounds() {
        let policy = RetryPolicy::exponential(Duration::from_millis(100), Duration::from_secs(60))
            .with_jitter(0.5);
        for attempt in 1..=8 {
            let (low, high) = policy.bounds(attempt);
            assert!(low < high);
            for _ in 0..200 {
                let delay = policy.delay(attempt);
                assert!(
                    low <= delay && delay <= high,
                    "{delay:?} outside {low:?}..{high:?}"
                );
            }
        }
    }

    #[test]
    fn huge_attempt_numbers_do_not_overflow() {
        let policy = RetryPolicy::default();
        assert_eq!(policy.bounds(u32::MAX).1, Duration::from_secs(300));
    }

    #[test]
    fn nonsense_settings_are_clamped() {
        let policy = RetryPolicy::default()
            .with_jitter(7.0)
            .with_multiplier(f64::NAN);
        assert_eq!(policy.jitter, 1.0);
        assert_eq!(policy.multiplier, 1.0);
    }
}
