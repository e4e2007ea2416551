//! [`ProviderRetryPolicy`]: in-place retries, shared by the SMTP channel and the
//! HTTP providers (so it exists whichever of the two features is on).

use std::time::Duration;

/// In-place retries of a failed provider call inside one send (HTTP and SMTP):
/// **off by default** (one attempt).
///
/// The retry layer is the messaging runtime: a channel classifies the failure
/// (transient or permanent, with the provider's `Retry-After`) and the event
/// listener hands it over as `HandlerError::retry` / `retry_after`, so the
/// subscriber's retry schedule applies and no handler holds a concurrency slot
/// while it sleeps. Turn in-place retries on (`with_max_attempts`) only where
/// there is no such layer (a direct `NotificationService` call from a request
/// handler, say); the two layers multiply.
///
/// When on: temporary failures are retried up to `max_attempts` in all: HTTP 408, 429
/// and 5xx answers, SMTP 4xx replies, timeouts and connection failures.
/// Permanent ones (other HTTP 4xx, SMTP 5xx) fail at once. The wait before a
/// retry is the provider's `Retry-After` when it gives one, else an exponential
/// backoff with jitter. A `Retry-After` longer than `max_retry_after` is not
/// waited for here: the send fails with a transient error carrying the delay,
/// and the event listener hands it to the messaging retry path
/// (`HandlerError::retry_after`).
///
/// ```
/// use std::time::Duration;
/// use notification::channel::ProviderRetryPolicy;
/// let policy = ProviderRetryPolicy::default().with_max_attempts(5).with_initial_backoff(Duration::from_millis(50));
/// assert_eq!(policy.max_attempts, 5);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ProviderRetryPolicy {
    /// Attempts in all, the first included (1: no retry).
    pub max_attempts: u32,
    /// Backoff before the first retry; doubles each time.
    pub initial_backoff: Duration,
    /// Longest backoff.
    pub max_backoff: Duration,
    /// Longest `Retry-After` waited for in place.
    pub max_retry_after: Duration,
}

impl Default for ProviderRetryPolicy {
    /// In-place retries off: 1 attempt (when turned on: 200 ms doubling up to
    /// 5 s, `Retry-After` up to 30 s).
    fn default() -> Self {
        Self {
            max_attempts: 1,
            initial_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(5),
            max_retry_after: Duration::from_secs(30),
        }
    }
}

impl ProviderRetryPolicy {
    /// No in-place retry: one attempt (the default).
    pub fn none() -> Self {
        Self::default().with_max_attempts(1)
    }

    /// Sets the attempts in all (at least 1).
    pub fn with_max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts.max(1);
        self
    }

    /// Sets the first backoff.
    pub fn with_initial_backoff(mut self, backoff: Duration) -> Self {
        self.initial_backoff = backoff;
        self
    }

    /// Sets the longest backoff.
    pub fn with_max_backoff(mut self, backoff: Duration) -> Self {
        self.max_backoff = backoff;
        self
    }

    /// Sets the longest `Retry-After` waited for in place.
    pub fn with_max_retry_after(mut self, delay: Duration) -> Self {
        self.max_retry_after = delay;
        self
    }

    /// The backoff before retry number `retry` (1-based): doubling, capped,
    /// then shortened by up to half at random.
    #[cfg(any(feature = "smtp", feature = "http"))]
    pub(crate) fn backoff(&self, retry: u32) -> Duration {
        let exponent = retry.saturating_sub(1).min(20);
        let full = self
            .initial_backoff
            .saturating_mul(1 << exponent)
            .min(self.max_backoff);
        full.mul_f64(0.5 + fastrand::f64() / 2.0)
    }
}

#[cfg(all(test, any(feature = "smtp", feature = "http")))]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_within_bounds() {
        let policy = ProviderRetryPolicy::default()
            .with_initial_backoff(Duration::from_millis(100))
            .with_max_backoff(Duration::from_millis(300));
        for _ in 0..50 {
            let first = policy.backoff(1);
            assert!(first >= Duration::from_millis(50) && first <= Duration::from_millis(100));
            let third = policy.backoff(3);
            assert!(third >= Duration::from_millis(150) && third <= Duration::from_millis(300));
        }
    }
}
