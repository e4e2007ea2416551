//! Small helpers shared by the provider modules.

use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use serde_json::Value;

use crate::{DeliveryEventError, Result};

pub(crate) fn malformed(detail: impl Into<String>) -> DeliveryEventError {
    DeliveryEventError::Malformed(detail.into())
}

/// Lowercase hex of `bytes`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[(b >> 4) as usize] as char);
        out.push(DIGITS[(b & 0xf) as usize] as char);
    }
    out
}

/// Decodes hex (either case); `None` when not hex.
pub(crate) fn unhex(s: &str) -> Option<Vec<u8>> {
    let s = s.as_bytes();
    if !s.len().is_multiple_of(2) {
        return None;
    }
    fn digit(c: u8) -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            b'A'..=b'F' => Some(c - b'A' + 10),
            _ => None,
        }
    }
    s.chunks(2)
        .map(|pair| Some(digit(pair[0])? << 4 | digit(pair[1])?))
        .collect()
}

pub(crate) fn base64_decode(s: &str) -> Option<Vec<u8>> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD
        .decode(s.trim())
        .ok()
}

pub(crate) fn base64_encode(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Seconds since the epoch as a UTC time, `None` when out of range.
pub(crate) fn from_unix(secs: i64) -> Option<DateTime<Utc>> {
    Utc.timestamp_opt(secs, 0).single()
}

/// Fractional seconds since the epoch (Mailgun's `1521472262.908181`).
pub(crate) fn from_unix_f64(secs: f64) -> Option<DateTime<Utc>> {
    if !secs.is_finite() || secs.abs() > 1e12 {
        return None;
    }
    let whole = secs.floor();
    // Microsecond precision (what Mailgun sends; f64 holds no more at this magnitude).
    let micros = ((secs - whole) * 1e6).round().clamp(0.0, 999_999.0) as u32;
    let nanos = micros * 1000;
    Utc.timestamp_opt(whole as i64, nanos).single()
}

/// An RFC 3339 time (`2019-11-05T16:33:54.9070259Z`, `2016-01-27T14:59:38.237Z`).
pub(crate) fn parse_rfc3339(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// Refuses `timestamp` when it is more than `tolerance` away from `now` (either way).
pub(crate) fn check_fresh(timestamp: i64, now: DateTime<Utc>, tolerance: Duration) -> Result<()> {
    let age = now.timestamp().saturating_sub(timestamp).unsigned_abs();
    if age > tolerance.as_secs() {
        return Err(DeliveryEventError::StaleTimestamp {
            timestamp,
            tolerance_secs: tolerance.as_secs(),
        });
    }
    Ok(())
}

/// `value[key]` as a string, if it is one.
pub(crate) fn str_field<'v>(value: &'v Value, key: &str) -> Option<&'v str> {
    value.get(key).and_then(Value::as_str)
}

/// `value[key]` as a non-empty string.
pub(crate) fn nonempty_field(value: &Value, key: &str) -> Option<String> {
    str_field(value, key)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

pub(crate) fn parse_json(body: &[u8]) -> Result<Value> {
    serde_json::from_slice(body).map_err(|e| malformed(format!("invalid JSON: {e}")))
}

/// The notification id in a provider's metadata object `map` (SendGrid event,
/// Postmark `Metadata`, SES `mail.tags`, Mailgun `user-variables`), under
/// [`NOTIFICATION_ID_KEY`](crate::NOTIFICATION_ID_KEY) (or its spelling with a
/// hyphen): a string, or SES's one-string array. Anything else (absent, not a
/// UUID: metadata of another system) is `None`, never an error.
pub(crate) fn notification_id_in(map: Option<&Value>) -> Option<uuid::Uuid> {
    let map = map?;
    let value = map
        .get(crate::NOTIFICATION_ID_KEY)
        .or_else(|| map.get("notification-id"))?;
    let text = match value {
        Value::String(text) => text.as_str(),
        Value::Array(items) => items.first()?.as_str()?,
        _ => return None,
    };
    uuid::Uuid::parse_str(text.trim()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip() {
        let bytes = [0u8, 1, 0xab, 0xff];
        assert_eq!(hex(&bytes), "0001abff");
        assert_eq!(unhex("0001ABff").unwrap(), bytes);
        assert!(unhex("0g").is_none());
        assert!(unhex("abc").is_none());
    }

    #[test]
    fn fractional_unix_times() {
        let t = from_unix_f64(1521472262.908181).unwrap();
        assert_eq!(t.timestamp(), 1521472262);
        assert!(from_unix_f64(f64::NAN).is_none());
        assert!(from_unix_f64(1e300).is_none());
    }
}
