//! Flow limits: rate limits and concurrency limits per key, enforced by the
//! subscription runtime across every consumer and process of a backend.
//!
//! A [`FlowLimit`] has a name, a [`LimitKey`] that says which messages share a
//! bucket (one bucket for everything, or one per tenant id, provider or any
//! value read from the message), and what it limits:
//!
//! * [`FlowLimit::rate`]: at most `permits` messages per `per` in each bucket
//!   ([`Rate`]), with a burst of `permits` (a generic cell rate algorithm: over
//!   any span `W`, at most `permits + W / (per / permits)` start). A message
//!   over the limit reserves the next free permit and waits for it: in its
//!   handler slot when the wait is short ([`SubscribeOptions::LIMIT_HOLD_MAX`](crate::SubscribeOptions::LIMIT_HOLD_MAX)),
//!   otherwise in the backend's durable delay queue, acknowledged and
//!   scheduled again for the permit's time in one atomic step. It is never
//!   failed and never counted as a retry, and it does not take another permit
//!   when it comes back.
//! * [`FlowLimit::concurrency`]: at most `max` messages of one bucket being
//!   handled at once. A slot is leased for the subscription's visibility
//!   timeout and renewed while the handler runs, so a crashed consumer's slots
//!   free themselves. A message that finds every slot taken is put back in the
//!   delay queue for a short, growing wait ([`concurrency_backoff`]); again not
//!   a retry.
//!
//! Buckets are named by the limit's name and the key's value, not by topic or
//! group: subscriptions that give the same name to a limit share its buckets
//! (one provider's quota across several topics), and every process over the
//! same backend sees the same buckets (Redis keeps them, in one key each, so
//! they work on a cluster). The backend keeps the time: Redis's own clock, so
//! the processes' clocks do not matter.
//!
//! ```
//! use std::time::Duration;
//! use messaging_core::limit::{FlowLimit, LimitKey, Rate};
//! use messaging_core::SubscribeOptions;
//!
//! let per_tenant: Rate = "100/1s".parse().unwrap();
//! let options = SubscribeOptions::new("sms")
//!     .with_limit(FlowLimit::rate("sms-per-tenant", LimitKey::metadata("tenant"), per_tenant).unwrap())
//!     .with_limit(FlowLimit::concurrency("one-report-per-tenant", LimitKey::metadata("tenant"), 1).unwrap());
//! assert_eq!(options.limits.len(), 2);
//! ```

use std::fmt;
use std::num::NonZeroU32;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use messaging_model::Message;
use thiserror::Error;

use crate::BackendError;

/// Metadata key the runtime writes on a message it put back for a rate
/// limit's permit: the names of the limits whose permits it already holds,
/// comma-separated. The runtime removes it when the message is admitted, so a
/// retry takes new permits.
pub const LIMIT_RESERVED_KEY: &str = "x-limit-reserved";
/// Metadata key the runtime writes on a message it put back because a
/// concurrency limit was full: how many times so far (the backoff grows with it).
pub const LIMIT_DEFERRALS_KEY: &str = "x-limit-deferrals";

/// Longest limit name, in bytes.
pub const MAX_LIMIT_NAME_LEN: usize = 64;
/// Longest key value kept as it is; longer ones (and ones with whitespace or
/// control characters) are replaced by a digest.
pub const MAX_KEY_VALUE_LEN: usize = 128;

/// A limit that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum InvalidLimit {
    /// The name is empty, too long, or has characters other than ASCII
    /// letters, digits, `.`, `_` and `-`.
    #[error("invalid limit name {0:?}: 1 to 64 ASCII letters, digits, '.', '_' or '-'")]
    Name(String),
    /// A rate with no permits, or an interval out of range.
    #[error(
        "invalid rate {0:?}: PERMITS/INTERVAL with 1 to 1,000,000 permits and an interval from 1 ms to 1 day, e.g. 100/1s or 14/s"
    )]
    Rate(String),
    /// A concurrency limit of zero, or above 100,000.
    #[error("invalid concurrency limit {0}: from 1 to 100,000")]
    Concurrency(u32),
    /// The metadata key or payload pointer that names the key is empty or
    /// malformed.
    #[error("invalid limit key {0:?}: a metadata key, or a JSON pointer such as /tenant_id")]
    Key(String),
}

/// A rate: `permits` per `per`, e.g. `100/1s`, `14/s`, `1000/1m`.
///
/// ```
/// use std::time::Duration;
/// use messaging_core::limit::Rate;
/// let rate: Rate = "14/s".parse().unwrap();
/// assert_eq!((rate.permits(), rate.per()), (14, Duration::from_secs(1)));
/// assert_eq!(rate.to_string(), "14/1000ms");
/// assert!("0/s".parse::<Rate>().is_err());
/// assert!(Rate::new(5, Duration::ZERO).is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    permits: NonZeroU32,
    per: Duration,
}

impl Rate {
    /// Most permits of one rate.
    pub const MAX_PERMITS: u32 = 1_000_000;
    /// Longest interval of one rate.
    pub const MAX_PER: Duration = Duration::from_secs(24 * 3600);

    /// `permits` per `per` (1 to [`MAX_PERMITS`](Self::MAX_PERMITS) permits, an
    /// interval from 1 ms to [`MAX_PER`](Self::MAX_PER)).
    pub fn new(permits: u32, per: Duration) -> Result<Self, InvalidLimit> {
        let invalid = || InvalidLimit::Rate(format!("{permits}/{}ms", per.as_millis()));
        if permits > Self::MAX_PERMITS || per < Duration::from_millis(1) || per > Self::MAX_PER {
            return Err(invalid());
        }
        let permits = NonZeroU32::new(permits).ok_or_else(invalid)?;
        Ok(Self { permits, per })
    }

    /// Permits per interval, which is also the burst.
    pub fn permits(&self) -> u32 {
        self.permits.get()
    }

    /// The interval.
    pub fn per(&self) -> Duration {
        self.per
    }

    /// The spacing of permits once the burst is spent, in microseconds
    /// (rounded up, so the rate is never exceeded).
    pub fn emission_interval_micros(&self) -> u64 {
        let per = u64::try_from(self.per.as_micros()).unwrap_or(u64::MAX);
        per.div_ceil(u64::from(self.permits.get())).max(1)
    }

    /// How far ahead of its schedule a permit may be taken (the burst beyond
    /// the first permit), in microseconds.
    pub fn burst_tolerance_micros(&self) -> u64 {
        self.emission_interval_micros() * u64::from(self.permits.get() - 1)
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}ms", self.permits, self.per.as_millis())
    }
}

impl FromStr for Rate {
    type Err = InvalidLimit;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let invalid = || InvalidLimit::Rate(text.chars().take(64).collect());
        let (permits, per) = text.trim().split_once('/').ok_or_else(invalid)?;
        let permits: u32 = permits.trim().parse().map_err(|_| invalid())?;
        let per = per.trim();
        let digits = per.find(|c: char| !c.is_ascii_digit()).unwrap_or(per.len());
        let (count, unit) = per.split_at(digits);
        let count: u64 = if count.is_empty() {
            1
        } else {
            count.parse().map_err(|_| invalid())?
        };
        let unit_millis: u64 = match unit {
            "ms" => 1,
            "s" => 1_000,
            "m" | "min" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            _ => return Err(invalid()),
        };
        let millis = count.checked_mul(unit_millis).ok_or_else(invalid)?;
        Self::new(permits, Duration::from_millis(millis)).map_err(|_| invalid())
    }
}

/// Which messages share a bucket of a limit.
///
/// ```
/// use messaging_core::limit::LimitKey;
/// use messaging_model::Message;
/// let message = Message::new("sms.send", serde_json::json!({"tenant": {"id": 7}}))
///     .unwrap()
///     .with_metadata("tenant", "acme");
/// assert_eq!(LimitKey::metadata("tenant").value_of(&message), "acme");
/// assert_eq!(LimitKey::payload("/tenant/id").unwrap().value_of(&message), "7");
/// assert_eq!(LimitKey::Global.value_of(&message), "");
/// // No such field: the message counts in the bucket of the empty key.
/// assert_eq!(LimitKey::metadata("region").value_of(&message), "");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum LimitKey {
    /// One bucket for every message.
    Global,
    /// The value of a metadata entry (a tenant id a producer sets, say).
    Metadata(String),
    /// The message's [`partition_key`](messaging_model::Message::partition_key).
    PartitionKey,
    /// A field of the JSON payload, by JSON pointer (`/tenant_id`,
    /// `/recipient/domain`); strings as they are, numbers and booleans as
    /// written in JSON.
    Payload(String),
}

impl LimitKey {
    /// The key read from metadata entry `name`.
    pub fn metadata(name: impl Into<String>) -> Self {
        Self::Metadata(name.into())
    }

    /// The key read from the payload at JSON pointer `pointer` (starting with `/`).
    pub fn payload(pointer: impl Into<String>) -> Result<Self, InvalidLimit> {
        let pointer = pointer.into();
        if !pointer.starts_with('/') || pointer.len() < 2 {
            return Err(InvalidLimit::Key(pointer));
        }
        Ok(Self::Payload(pointer))
    }

    fn check(&self) -> Result<(), InvalidLimit> {
        match self {
            Self::Metadata(name) if name.is_empty() => Err(InvalidLimit::Key(name.clone())),
            Self::Payload(pointer) if !pointer.starts_with('/') || pointer.len() < 2 => {
                Err(InvalidLimit::Key(pointer.clone()))
            }
            _ => Ok(()),
        }
    }

    /// The bucket's key of `message`: the value read, the empty string when
    /// the message has none (all such messages share one bucket), or a digest
    /// (`~` and 16 hex digits) when the value is longer than
    /// [`MAX_KEY_VALUE_LEN`] or has whitespace or control characters.
    pub fn value_of(&self, message: &Message) -> String {
        let raw = match self {
            Self::Global => return String::new(),
            Self::Metadata(name) => message.metadata.get(name).cloned(),
            Self::PartitionKey => message.partition_key.clone(),
            Self::Payload(pointer) => {
                message
                    .payload
                    .pointer(pointer)
                    .and_then(|value| match value {
                        serde_json::Value::String(text) => Some(text.clone()),
                        serde_json::Value::Number(number) => Some(number.to_string()),
                        serde_json::Value::Bool(flag) => Some(flag.to_string()),
                        _ => None,
                    })
            }
        };
        let raw = raw.unwrap_or_default();
        if raw.len() <= MAX_KEY_VALUE_LEN
            && !raw.chars().any(|c| c.is_whitespace() || c.is_control())
        {
            raw
        } else {
            format!("~{:016x}", fnv1a(raw.as_bytes()))
        }
    }
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// What a [`FlowLimit`] limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum LimitKind {
    /// Messages started per interval, per bucket.
    Rate(Rate),
    /// Messages being handled at once, per bucket.
    Concurrency(NonZeroU32),
}

/// A limit a subscription enforces (see the [module](self) documentation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowLimit {
    name: String,
    key: LimitKey,
    kind: LimitKind,
}

impl FlowLimit {
    /// Most concurrency of one bucket.
    pub const MAX_CONCURRENCY: u32 = 100_000;

    /// At most `rate` messages started per bucket of `key`.
    pub fn rate(name: impl Into<String>, key: LimitKey, rate: Rate) -> Result<Self, InvalidLimit> {
        Self::build(name.into(), key, LimitKind::Rate(rate))
    }

    /// At most `max` messages of one bucket of `key` handled at once.
    pub fn concurrency(
        name: impl Into<String>,
        key: LimitKey,
        max: u32,
    ) -> Result<Self, InvalidLimit> {
        if max > Self::MAX_CONCURRENCY {
            return Err(InvalidLimit::Concurrency(max));
        }
        let max = NonZeroU32::new(max).ok_or(InvalidLimit::Concurrency(max))?;
        Self::build(name.into(), key, LimitKind::Concurrency(max))
    }

    fn build(name: String, key: LimitKey, kind: LimitKind) -> Result<Self, InvalidLimit> {
        let valid_name = !name.is_empty()
            && name.len() <= MAX_LIMIT_NAME_LEN
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
        if !valid_name {
            return Err(InvalidLimit::Name(name.chars().take(80).collect()));
        }
        key.check()?;
        Ok(Self { name, key, kind })
    }

    /// The limit's name, which names its buckets.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Which messages share a bucket.
    pub fn key(&self) -> &LimitKey {
        &self.key
    }

    /// What it limits.
    pub fn kind(&self) -> LimitKind {
        self.kind
    }

    /// The bucket `message` counts in.
    pub fn bucket_of(&self, message: &Message) -> LimitBucket {
        LimitBucket {
            limit: self.name.clone(),
            key: self.key.value_of(message),
        }
    }
}

/// One bucket of a limit: the limit's name and a key value.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LimitBucket {
    /// The limit's name (checked by [`FlowLimit`]).
    pub limit: String,
    /// The key's value (see [`LimitKey::value_of`]).
    pub key: String,
}

/// How long a message that found a concurrency limit full waits before it is
/// tried again, after `deferrals` earlier tries: 50 ms doubling up to 2 s.
///
/// ```
/// use std::time::Duration;
/// use messaging_core::limit::concurrency_backoff;
/// assert_eq!(concurrency_backoff(0), Duration::from_millis(50));
/// assert_eq!(concurrency_backoff(2), Duration::from_millis(200));
/// assert_eq!(concurrency_backoff(30), Duration::from_secs(2));
/// ```
pub fn concurrency_backoff(deferrals: u32) -> Duration {
    Duration::from_millis(50u64.saturating_mul(1u64 << deferrals.min(16)))
        .min(Duration::from_secs(2))
}

/// The buckets of flow limits, kept by a backend so that every consumer and
/// process over it shares them: an optional ability of a backend, reached
/// through [`MessageBackend::limit_backend`](crate::MessageBackend::limit_backend).
///
/// The contract:
/// * [`reserve_permits`](Self::reserve_permits) always takes permits: the next
///   free one of the bucket under `rate` (a generic cell rate algorithm with a
///   burst of `rate.permits()`), and answers how long from now until it is
///   due (zero: now). Permits are handed out in the order asked, across every
///   caller, and never more than the rate allows: over any span `W`, at most
///   `permits + W / emission interval` are due;
/// * [`acquire_slots`](Self::acquire_slots) goes through `holders` in order:
///   a holder that has a live slot of the bucket renews it until `lease` from
///   now (and gets `true`), another takes a free one of the `max` slots for
///   `lease` (`true`) or gets `false` when `max` live holders have one. So when
///   fewer slots are free than holders ask, the first ones get them. A slot
///   whose lease ran out is free; renewing is acquiring again;
/// * [`release_slots`](Self::release_slots) frees the slots of `holders`, if
///   they have any;
/// * the backend keeps the clock (one clock for every process).
#[async_trait]
pub trait LimitBackend: Send + Sync + 'static {
    /// Takes the next `count` permits of `bucket` under `rate`, as `count`
    /// takes of one permit at the same instant would (one round trip for the
    /// permits of several messages).
    async fn reserve_permits(
        &self,
        bucket: &LimitBucket,
        rate: Rate,
        count: u32,
    ) -> Result<Permits, BackendError>;

    /// Takes `count` permits as [`reserve_permits`](Self::reserve_permits)
    /// does and, in the same step, up to `ahead` more that the caller hands
    /// out itself later: only as many as leave at least half of the burst
    /// free (so each is due already, and a bucket near its limit gives none).
    /// Answers the `count` permits and how many were taken ahead.
    ///
    /// The provided method takes none ahead; a backend that keeps its own
    /// state overrides it (with [`gcra_reserve_ahead`]).
    async fn reserve_permits_ahead(
        &self,
        bucket: &LimitBucket,
        rate: Rate,
        count: u32,
        ahead: u32,
    ) -> Result<(Permits, u32), BackendError> {
        let _ = ahead;
        Ok((self.reserve_permits(bucket, rate, count).await?, 0))
    }

    /// Takes (or renews) a slot of `bucket` for each of `holders`, in order,
    /// for `lease`, in one call: the answer has one entry per holder, `false`
    /// for those that found all `max` slots held.
    async fn acquire_slots(
        &self,
        bucket: &LimitBucket,
        max: u32,
        holders: &[String],
        lease: Duration,
    ) -> Result<Vec<bool>, BackendError>;

    /// Frees the slots of `bucket` that `holders` have, in one call.
    async fn release_slots(
        &self,
        bucket: &LimitBucket,
        holders: &[String],
    ) -> Result<(), BackendError>;
}

/// Permits taken together ([`LimitBackend::reserve_permits`]): the k-th
/// (from 0) is due `k` emission intervals after the first.
///
/// ```
/// use std::time::Duration;
/// use messaging_core::limit::{Permits, Rate};
/// let rate: Rate = "10/1s".parse().unwrap();
/// // The first was due 150 ms ago (the burst had room).
/// let permits = Permits::new(-150_000, rate, 3);
/// assert_eq!(permits.wait(0), Duration::ZERO);
/// assert_eq!(permits.wait(1), Duration::ZERO);
/// assert_eq!(permits.wait(2), Duration::from_millis(50));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Permits {
    first_due_in_micros: i64,
    interval_micros: u64,
    count: u32,
}

impl Permits {
    /// `count` permits under `rate`, the first due `first_due_in_micros`
    /// from now (negative: due already).
    pub fn new(first_due_in_micros: i64, rate: Rate, count: u32) -> Self {
        Self {
            first_due_in_micros,
            interval_micros: rate.emission_interval_micros(),
            count,
        }
    }

    /// How many.
    pub fn count(&self) -> u32 {
        self.count
    }

    /// How long from now until the k-th is due (zero: due).
    pub fn wait(&self, k: u32) -> Duration {
        let offset =
            i64::try_from(self.interval_micros.saturating_mul(u64::from(k))).unwrap_or(i64::MAX);
        let due_in = self.first_due_in_micros.saturating_add(offset);
        Duration::from_micros(u64::try_from(due_in).unwrap_or(0))
    }
}

/// The generic cell rate algorithm's step, for backends that keep the state
/// themselves: with the bucket's theoretical arrival time `tat` (µs, 0 when
/// new) at `now` (µs), taking `count` permits, how long from now until the
/// first is due (negative: due already) and the new `tat`.
///
/// ```
/// use messaging_core::limit::{gcra_reserve, Rate};
/// let rate: Rate = "2/1s".parse().unwrap();
/// let (due_in, tat) = gcra_reserve(0, 10_000_000, rate, 1);
/// assert!(due_in <= 0);
/// let (due_in, tat) = gcra_reserve(tat, 10_000_000, rate, 1);
/// assert_eq!(due_in, 0); // the burst of 2
/// let (due_in, _) = gcra_reserve(tat, 10_000_000, rate, 1);
/// assert_eq!(due_in, 500_000); // then one each 500 ms
/// ```
pub fn gcra_reserve(tat: u64, now: u64, rate: Rate, count: u32) -> (i64, u64) {
    let start = tat.max(now);
    let due = i128::from(start) - i128::from(rate.burst_tolerance_micros());
    let due_in = i64::try_from(due - i128::from(now)).unwrap_or(i64::MIN);
    (
        due_in,
        start.saturating_add(rate.emission_interval_micros() * u64::from(count.max(1))),
    )
}

/// [`gcra_reserve`] that also takes up to `ahead` permits more, as many as
/// leave at least half of the burst free after them (each of them is due at
/// `now`): the first's due time (µs from `now`), how many were taken ahead,
/// and the new `tat`.
///
/// ```
/// use messaging_core::limit::{gcra_reserve_ahead, Rate};
/// let rate: Rate = "100/1s".parse().unwrap(); // one each 10 ms, a burst of 100
/// let (due_in, ahead, tat) = gcra_reserve_ahead(0, 10_000_000, rate, 1, 10);
/// assert!(due_in <= 0);
/// assert_eq!(ahead, 10);
/// assert_eq!(tat, 10_000_000 + 11 * 10_000);
/// // Half of the burst is 49 permits: 11 are taken, 1 is asked, 37 more ahead.
/// let (_, ahead, _) = gcra_reserve_ahead(tat, 10_000_000, rate, 1, 1_000);
/// assert_eq!(ahead, 37);
/// ```
pub fn gcra_reserve_ahead(
    tat: u64,
    now: u64,
    rate: Rate,
    count: u32,
    ahead: u32,
) -> (i64, u32, u64) {
    let count = count.max(1);
    let start = tat.max(now);
    let interval = rate.emission_interval_micros();
    let room =
        (now.saturating_add(rate.burst_tolerance_micros() / 2)).saturating_sub(start) / interval;
    let ahead = u32::try_from(room.saturating_sub(u64::from(count)))
        .unwrap_or(u32::MAX)
        .min(ahead);
    let (due_in, _) = gcra_reserve(tat, now, rate, count);
    (
        due_in,
        ahead,
        start.saturating_add(interval * u64::from(count + ahead)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permits_taken_ahead_are_due_and_keep_half_the_burst() {
        let rate: Rate = "64/100ms".parse().unwrap();
        let now = 5_000_000;
        let (_, ahead, tat) = gcra_reserve_ahead(0, now, rate, 4, 1_000);
        // Every permit taken is due at `now` (the last one's due time is one
        // interval and the burst before `tat`), and half the burst is free.
        assert!(ahead > 0);
        assert!(tat - rate.emission_interval_micros() - rate.burst_tolerance_micros() <= now);
        assert!(tat <= now + rate.burst_tolerance_micros() / 2);
        // A bucket past half its burst gives none ahead, only what is asked.
        let (_, none, next) = gcra_reserve_ahead(tat, now, rate, 1, 1_000);
        assert_eq!(none, 0);
        assert_eq!(next, tat + rate.emission_interval_micros());
        // A rate of one permit per interval (no burst) never gives any.
        let single: Rate = "1/1s".parse().unwrap();
        assert_eq!(gcra_reserve_ahead(0, now, single, 1, 10).1, 0);
    }

    #[test]
    fn rates_parse_and_refuse() {
        for (text, permits, millis) in [
            ("100/1s", 100, 1000),
            ("14/s", 14, 1000),
            ("1000/1m", 1000, 60_000),
            (" 5 / 250ms ", 5, 250),
            ("1/1d", 1, 86_400_000),
        ] {
            let rate: Rate = text.parse().unwrap();
            assert_eq!(
                (rate.permits(), rate.per()),
                (permits, Duration::from_millis(millis)),
                "{text}"
            );
        }
        for text in [
            "",
            "5",
            "0/s",
            "5/0s",
            "5/2d",
            "5/s/s",
            "x/s",
            "5/1y",
            "-1/s",
            "5/99999999999999999999s",
        ] {
            assert!(text.parse::<Rate>().is_err(), "{text:?} was accepted");
        }
    }

    #[test]
    fn gcra_never_exceeds_the_rate_plus_the_burst() {
        let rate: Rate = "10/1s".parse().unwrap();
        let mut tat = 0;
        let start = 1_000_000_000;
        let mut due = Vec::new();
        for _ in 0..1000 {
            let (due_in, next) = gcra_reserve(tat, start, rate, 1);
            tat = next;
            due.push(start + u64::try_from(due_in).unwrap_or(0));
        }
        // Over any window of W µs, at most 10 + W / 100 ms permits are due.
        for window in [1_000u64, 100_000, 1_000_000, 30_000_000] {
            for (i, first) in due.iter().enumerate() {
                let inside = due[i..].iter().take_while(|t| **t < first + window).count() as u64;
                assert!(inside <= 10 + window / 100_000, "window {window}: {inside}");
            }
        }
        // And they come at the rate: the 1000th is due 99 s after the start.
        assert_eq!(due[999] - start, 99_000_000);
    }

    #[test]
    fn limits_check_names_and_values() {
        let rate: Rate = "1/s".parse().unwrap();
        assert!(FlowLimit::rate("sms.per-tenant_1", LimitKey::Global, rate).is_ok());
        for name in ["", "a b", "a:b", "ü", &"x".repeat(65)] {
            assert!(matches!(
                FlowLimit::rate(name, LimitKey::Global, rate),
                Err(InvalidLimit::Name(_))
            ));
        }
        assert!(matches!(
            FlowLimit::concurrency("c", LimitKey::Global, 0),
            Err(InvalidLimit::Concurrency(0))
        ));
        assert!(FlowLimit::concurrency("c", LimitKey::metadata(""), 1).is_err());
        assert!(LimitKey::payload("tenant").is_err());
        let message = Message::new("t", serde_json::json!({"t": "a b"}))
            .unwrap()
            .with_metadata("k", "x".repeat(500));
        let long = LimitKey::metadata("k").value_of(&message);
        assert!(long.starts_with('~') && long.len() == 17);
        let spaced = LimitKey::payload("/t").unwrap().value_of(&message);
        assert!(spaced.starts_with('~') && spaced != long);
    }
}

/// The buckets of [`InMemoryBackend`](crate::InMemoryBackend): one process,
/// one clock (the monotonic clock from the backend's creation).
#[derive(Debug)]
pub(crate) struct MemoryLimits {
    epoch: std::time::Instant,
    state: std::sync::Mutex<MemoryBuckets>,
}

#[derive(Debug, Default)]
struct MemoryBuckets {
    /// Theoretical arrival time of each rate bucket, µs from the epoch.
    rates: std::collections::HashMap<LimitBucket, u64>,
    /// Holders of each concurrency bucket and the end of their lease, µs.
    slots: std::collections::HashMap<LimitBucket, std::collections::HashMap<String, u64>>,
}

impl Default for MemoryLimits {
    fn default() -> Self {
        Self {
            epoch: std::time::Instant::now(),
            state: std::sync::Mutex::default(),
        }
    }
}

impl MemoryLimits {
    fn now_micros(&self) -> u64 {
        // Starts at 1 s so a new bucket's zero is in the past.
        u64::try_from(self.epoch.elapsed().as_micros()).unwrap_or(u64::MAX) + 1_000_000
    }

    fn buckets(&self) -> std::sync::MutexGuard<'_, MemoryBuckets> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(crate) fn reserve_permits(&self, bucket: &LimitBucket, rate: Rate, count: u32) -> Permits {
        let now = self.now_micros();
        let mut buckets = self.buckets();
        // Forget buckets whose permits are all back (their state is "new").
        if buckets.rates.len() > 10_000 {
            buckets.rates.retain(|_, tat| *tat > now);
        }
        let tat = buckets.rates.get(bucket).copied().unwrap_or(0);
        let (due_in, next) = gcra_reserve(tat, now, rate, count);
        buckets.rates.insert(bucket.clone(), next);
        Permits::new(due_in, rate, count)
    }

    pub(crate) fn reserve_permits_ahead(
        &self,
        bucket: &LimitBucket,
        rate: Rate,
        count: u32,
        ahead: u32,
    ) -> (Permits, u32) {
        let now = self.now_micros();
        let mut buckets = self.buckets();
        if buckets.rates.len() > 10_000 {
            buckets.rates.retain(|_, tat| *tat > now);
        }
        let tat = buckets.rates.get(bucket).copied().unwrap_or(0);
        let (due_in, ahead, next) = gcra_reserve_ahead(tat, now, rate, count, ahead);
        buckets.rates.insert(bucket.clone(), next);
        (Permits::new(due_in, rate, count.max(1)), ahead)
    }

    pub(crate) fn acquire_slots(
        &self,
        bucket: &LimitBucket,
        max: u32,
        holders: &[String],
        lease: Duration,
    ) -> Vec<bool> {
        let now = self.now_micros();
        let until = now.saturating_add(u64::try_from(lease.as_micros()).unwrap_or(u64::MAX));
        let max = usize::try_from(max).unwrap_or(usize::MAX);
        let mut buckets = self.buckets();
        if !buckets.slots.contains_key(bucket) {
            buckets.slots.insert(bucket.clone(), Default::default());
        }
        let Some(held) = buckets.slots.get_mut(bucket) else {
            return vec![false; holders.len()];
        };
        held.retain(|_, end| *end > now);
        let taken = holders
            .iter()
            .map(|holder| {
                if let Some(end) = held.get_mut(holder) {
                    *end = until;
                    true
                } else if held.len() < max {
                    held.insert(holder.clone(), until);
                    true
                } else {
                    false
                }
            })
            .collect();
        if held.is_empty() {
            buckets.slots.remove(bucket);
        }
        taken
    }

    pub(crate) fn release_slots(&self, bucket: &LimitBucket, holders: &[String]) {
        let mut buckets = self.buckets();
        if let Some(held) = buckets.slots.get_mut(bucket) {
            for holder in holders {
                held.remove(holder);
            }
            if held.is_empty() {
                buckets.slots.remove(bucket);
            }
        }
    }
}
