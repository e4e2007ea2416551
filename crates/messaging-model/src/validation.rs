use thiserror::Error;

/// Longest topic name accepted, in bytes.
pub const MAX_TOPIC_LEN: usize = 128;
/// Largest payload accepted, in bytes of its JSON encoding (1 MiB).
pub const MAX_PAYLOAD_BYTES: usize = 1024 * 1024;
/// Highest `max_retry` a message may ask for.
pub const MAX_RETRY_LIMIT: u32 = 100;
/// `max_retry` of a message that does not choose one.
pub const DEFAULT_MAX_RETRY: u32 = 3;
/// Most messages one batch publish takes.
pub const MAX_BATCH_MESSAGES: usize = 10_000;
/// Most payload bytes (JSON) one batch publish takes: 16 MiB.
pub const MAX_BATCH_BYTES: usize = 16 * 1024 * 1024;
/// Deepest nesting of arrays and objects accepted in a payload. Every backend
/// checks it at publish, so a message that one backend delivers is never
/// undecodable on another (serde_json refuses to parse past 128 levels).
pub const MAX_JSON_DEPTH: usize = 64;
/// Longest delay accepted for a delayed or scheduled message (366 days): past it
/// a time is more likely a unit mistake than a plan, and far-future times would
/// overflow date arithmetic.
pub const MAX_DELAY: std::time::Duration = std::time::Duration::from_secs(366 * 24 * 60 * 60);

/// Input rejected before anything was stored.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ValidationError {
    /// The topic name is empty, too long or holds a character outside `[A-Za-z0-9._-]`.
    #[error("invalid topic {topic:?}: {reason}")]
    InvalidTopic {
        /// The rejected name.
        topic: String,
        /// Why it was rejected.
        reason: &'static str,
    },
    /// The payload's JSON encoding is larger than the limit.
    #[error("payload of {size} bytes exceeds the limit of {limit} bytes")]
    PayloadTooLarge {
        /// Size of the encoded payload.
        size: usize,
        /// The limit it exceeded.
        limit: usize,
    },
    /// The payload is not a JSON object.
    #[error("payload must be a JSON object, got {found}")]
    PayloadNotObject {
        /// The JSON type that was given instead.
        found: &'static str,
    },
    /// `max_retry` is above [`MAX_RETRY_LIMIT`].
    #[error("max_retry {value} is above the limit of {limit}")]
    MaxRetryOutOfRange {
        /// The rejected value.
        value: u32,
        /// The highest accepted value.
        limit: u32,
    },
    /// The payload nests arrays and objects deeper than [`MAX_JSON_DEPTH`].
    #[error("payload nests deeper than {limit} levels")]
    PayloadTooDeep {
        /// The deepest nesting accepted.
        limit: usize,
    },
    /// The metadata holds a key only the messaging runtime may write (such as
    /// `x-target-group`).
    #[error("metadata key {key:?} is reserved for the messaging runtime")]
    ReservedMetadataKey {
        /// The reserved key.
        key: String,
    },
    /// A batch holds more messages than [`MAX_BATCH_MESSAGES`] or more payload
    /// bytes than [`MAX_BATCH_BYTES`]; nothing of it was stored.
    #[error(
        "batch of {messages} messages and {bytes} payload bytes exceeds the limit of {max_messages} messages and {max_bytes} bytes"
    )]
    BatchTooLarge {
        /// Messages in the batch.
        messages: usize,
        /// Payload bytes counted (counting stops past the limit).
        bytes: usize,
        /// [`MAX_BATCH_MESSAGES`].
        max_messages: usize,
        /// [`MAX_BATCH_BYTES`].
        max_bytes: usize,
    },
    /// A metadata entry the runtime reads (such as `timeout_ms`, a handler
    /// timeout) holds a value it cannot use.
    #[error("metadata key {key:?}: {reason}")]
    InvalidMetadata {
        /// The key.
        key: String,
        /// What the value must be.
        reason: &'static str,
    },
    /// A partition key is empty, longer than [`MAX_PARTITION_KEY_LEN`] bytes or
    /// holds whitespace or control characters.
    #[error("invalid partition key {key:?}: 1 to 256 bytes, no whitespace or control characters")]
    InvalidPartitionKey {
        /// The key (at most its first 256 characters).
        key: String,
    },
    /// A delivery time is further ahead than [`MAX_DELAY`].
    #[error("delay of {requested:?} exceeds the maximum of {limit:?}")]
    DelayTooLong {
        /// The delay asked for (saturated at `Duration::MAX`).
        requested: std::time::Duration,
        /// The longest delay accepted.
        limit: std::time::Duration,
    },
}

/// Checks a topic name: 1 to [`MAX_TOPIC_LEN`] bytes of `[A-Za-z0-9._-]`, starting
/// with a letter or digit, optionally followed by a partition suffix `#N` (`N`
/// below [`MAX_PARTITIONS`], no leading zeros): `orders#3` names partition 3 of
/// the partitioned topic `orders` (see `messaging_core::Partitioned`).
///
/// The restricted alphabet keeps topic names safe inside Redis keys (no `{`, `}`,
/// `:` or spaces) and SQL identifiers.
///
/// ```
/// use messaging_model::{validate_topic, ValidationError};
/// assert!(validate_topic("wallet.recharged").is_ok());
/// assert!(matches!(validate_topic("a b"), Err(ValidationError::InvalidTopic { .. })));
/// assert!(validate_topic("orders#3").is_ok());
/// assert!(validate_topic("orders#03").is_err());
/// assert!(validate_topic("orders#1024").is_err());
/// ```
pub fn validate_topic(topic: &str) -> Result<(), ValidationError> {
    match topic.split_once('#') {
        None => validate_topic_name(topic, topic),
        Some((base, index)) => {
            validate_topic_name(topic, base)?;
            if parse_partition_index(index).is_none() {
                return Err(ValidationError::InvalidTopic {
                    topic: topic.chars().take(MAX_TOPIC_LEN + 8).collect(),
                    reason: "a partition suffix is '#' and an index below 1024 without leading zeros",
                });
            }
            Ok(())
        }
    }
}

/// The most partitions a topic may have.
pub const MAX_PARTITIONS: u16 = 1024;

/// The index of a partition suffix (`"3"` of `orders#3`): decimal, no leading
/// zeros, below [`MAX_PARTITIONS`].
pub(crate) fn parse_partition_index(index: &str) -> Option<u16> {
    let canonical = !index.is_empty()
        && index.len() <= 4
        && index.bytes().all(|b| b.is_ascii_digit())
        && (index == "0" || !index.starts_with('0'));
    let value: u16 = if canonical {
        index.parse().ok()?
    } else {
        return None;
    };
    (value < MAX_PARTITIONS).then_some(value)
}

/// Checks a key naming the partition a message goes to: 1 to 256 bytes,
/// no whitespace or control characters.
///
/// ```
/// use messaging_model::{validate_partition_key, ValidationError};
/// assert!(validate_partition_key("user-42").is_ok());
/// assert!(matches!(validate_partition_key(""), Err(ValidationError::InvalidPartitionKey { .. })));
/// ```
pub fn validate_partition_key(key: &str) -> Result<(), ValidationError> {
    let valid = !key.is_empty()
        && key.len() <= MAX_PARTITION_KEY_LEN
        && !key.chars().any(|c| c.is_whitespace() || c.is_control());
    if valid {
        Ok(())
    } else {
        Err(ValidationError::InvalidPartitionKey {
            key: key.chars().take(MAX_PARTITION_KEY_LEN).collect(),
        })
    }
}

/// The longest partition key, in bytes.
pub const MAX_PARTITION_KEY_LEN: usize = 256;

fn validate_topic_name(topic: &str, name: &str) -> Result<(), ValidationError> {
    let invalid = |reason| {
        Err(ValidationError::InvalidTopic {
            topic: topic.chars().take(MAX_TOPIC_LEN + 8).collect(),
            reason,
        })
    };
    if name.is_empty() {
        return invalid("empty");
    }
    if name.len() > MAX_TOPIC_LEN {
        return invalid("longer than 128 bytes");
    }
    if !name.as_bytes()[0].is_ascii_alphanumeric() {
        return invalid("must start with a letter or digit");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        return invalid("only letters, digits, '.', '_' and '-' are allowed");
    }
    Ok(())
}

/// Checks that a payload is a JSON object no larger than [`MAX_PAYLOAD_BYTES`].
///
/// ```
/// use messaging_model::validate_payload;
/// assert!(validate_payload(&serde_json::json!({"a": 1})).is_ok());
/// assert!(validate_payload(&serde_json::json!([1, 2])).is_err());
/// ```
pub fn validate_payload(payload: &serde_json::Value) -> Result<(), ValidationError> {
    payload_size_checked(payload).map(drop)
}

/// Checks a payload as [`validate_payload`] does and returns the size of its JSON
/// encoding, in bytes (measured once, for the check and for batch limits).
///
/// ```
/// assert_eq!(messaging_model::payload_size_checked(&serde_json::json!({"a": 1})), Ok(7));
/// ```
pub fn payload_size_checked(payload: &serde_json::Value) -> Result<usize, ValidationError> {
    let found = match payload {
        serde_json::Value::Object(_) => None,
        serde_json::Value::Null => Some("null"),
        serde_json::Value::Bool(_) => Some("a boolean"),
        serde_json::Value::Number(_) => Some("a number"),
        serde_json::Value::String(_) => Some("a string"),
        serde_json::Value::Array(_) => Some("an array"),
    };
    if let Some(found) = found {
        return Err(ValidationError::PayloadNotObject { found });
    }
    if json_depth_exceeds(payload, MAX_JSON_DEPTH) {
        return Err(ValidationError::PayloadTooDeep {
            limit: MAX_JSON_DEPTH,
        });
    }
    let mut counter = ByteCounter(0);
    // Writing into a counter cannot fail; a failure would only mean an unencodable value.
    let _ = serde_json::to_writer(&mut counter, payload);
    if counter.0 > MAX_PAYLOAD_BYTES {
        return Err(ValidationError::PayloadTooLarge {
            size: counter.0,
            limit: MAX_PAYLOAD_BYTES,
        });
    }
    Ok(counter.0)
}

/// Checks that `max_retry` is at most [`MAX_RETRY_LIMIT`].
///
/// ```
/// assert!(messaging_model::validate_max_retry(5).is_ok());
/// assert!(messaging_model::validate_max_retry(1_000).is_err());
/// ```
pub fn validate_max_retry(max_retry: u32) -> Result<(), ValidationError> {
    if max_retry > MAX_RETRY_LIMIT {
        return Err(ValidationError::MaxRetryOutOfRange {
            value: max_retry,
            limit: MAX_RETRY_LIMIT,
        });
    }
    Ok(())
}

/// Checks a batch's totals: at most [`MAX_BATCH_MESSAGES`] messages whose
/// payloads add up to at most [`MAX_BATCH_BYTES`].
///
/// ```
/// use messaging_model::{validate_batch, MAX_BATCH_MESSAGES};
/// assert!(validate_batch(100, 100 * 200).is_ok());
/// assert!(validate_batch(MAX_BATCH_MESSAGES + 1, 0).is_err());
/// ```
pub fn validate_batch(messages: usize, bytes: usize) -> Result<(), ValidationError> {
    if messages > MAX_BATCH_MESSAGES || bytes > MAX_BATCH_BYTES {
        return Err(ValidationError::BatchTooLarge {
            messages,
            bytes,
            max_messages: MAX_BATCH_MESSAGES,
            max_bytes: MAX_BATCH_BYTES,
        });
    }
    Ok(())
}

/// Checks that a delay is at most [`MAX_DELAY`].
///
/// ```
/// use std::time::Duration;
/// use messaging_model::{validate_delay, ValidationError};
/// assert!(validate_delay(Duration::from_secs(3600)).is_ok());
/// assert!(matches!(validate_delay(Duration::MAX), Err(ValidationError::DelayTooLong { .. })));
/// ```
pub fn validate_delay(delay: std::time::Duration) -> Result<(), ValidationError> {
    if delay > MAX_DELAY {
        return Err(ValidationError::DelayTooLong {
            requested: delay,
            limit: MAX_DELAY,
        });
    }
    Ok(())
}

/// Whether `value` nests arrays and objects deeper than `limit` levels (a scalar
/// is depth 0, `{}` depth 1). Iterative, so a hostile value cannot overflow the
/// stack.
///
/// ```
/// use serde_json::json;
/// assert!(!messaging_model::json_depth_exceeds(&json!({"a": [1]}), 2));
/// assert!(messaging_model::json_depth_exceeds(&json!({"a": [[1]]}), 2));
/// ```
pub fn json_depth_exceeds(value: &serde_json::Value, limit: usize) -> bool {
    use serde_json::Value;
    let mut stack: Vec<(&Value, usize)> = vec![(value, 0)];
    while let Some((value, depth)) = stack.pop() {
        let inner = depth + 1;
        match value {
            Value::Array(_) | Value::Object(_) if inner > limit => return true,
            Value::Array(items) => stack.extend(items.iter().map(|child| (child, inner))),
            Value::Object(map) => stack.extend(map.values().map(|child| (child, inner))),
            _ => {}
        }
    }
    false
}

/// Counts bytes without keeping them, so measuring a payload allocates nothing.
struct ByteCounter(usize);

impl std::io::Write for ByteCounter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len();
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn accepts_every_predefined_topic() {
        for topic in crate::topics::ALL {
            validate_topic(topic).unwrap();
        }
    }

    #[test]
    fn rejects_bad_topic_names() {
        for bad in [
            "",
            " x",
            "a b",
            "a{b}",
            "a:b",
            "ünï",
            ".hidden",
            &"x".repeat(129),
        ] {
            assert!(
                matches!(
                    validate_topic(bad),
                    Err(ValidationError::InvalidTopic { .. })
                ),
                "{bad:?} accepted"
            );
        }
        assert!(validate_topic(&"x".repeat(128)).is_ok());
    }

    #[test]
    fn rejects_oversized_and_non_object_payloads() {
        let big = json!({ "data": "x".repeat(MAX_PAYLOAD_BYTES) });
        assert!(matches!(
            validate_payload(&big),
            Err(ValidationError::PayloadTooLarge {
                limit: MAX_PAYLOAD_BYTES,
                ..
            })
        ));
        assert_eq!(
            validate_payload(&json!("text")),
            Err(ValidationError::PayloadNotObject { found: "a string" })
        );
        assert!(validate_payload(&json!({ "data": "x".repeat(1000) })).is_ok());
    }

    #[test]
    fn bounds_payload_depth() {
        let mut deep = json!(1);
        for _ in 0..MAX_JSON_DEPTH - 1 {
            deep = json!([deep]);
        }
        let at_limit = json!({ "a": deep });
        assert!(validate_payload(&at_limit).is_ok());
        let over = json!({ "a": [deep] });
        assert_eq!(
            validate_payload(&over),
            Err(ValidationError::PayloadTooDeep {
                limit: MAX_JSON_DEPTH
            })
        );
        // 200 levels: deeper than serde_json parses back, refused before storing.
        let mut very_deep = json!({});
        for _ in 0..200 {
            very_deep = json!({ "x": very_deep });
        }
        assert!(matches!(
            validate_payload(&very_deep),
            Err(ValidationError::PayloadTooDeep { .. })
        ));
    }

    #[test]
    fn bounds_delays() {
        assert!(validate_delay(MAX_DELAY).is_ok());
        assert!(matches!(
            validate_delay(MAX_DELAY + std::time::Duration::from_millis(1)),
            Err(ValidationError::DelayTooLong { .. })
        ));
    }

    #[test]
    fn bounds_max_retry() {
        assert!(validate_max_retry(0).is_ok());
        assert!(validate_max_retry(MAX_RETRY_LIMIT).is_ok());
        assert!(validate_max_retry(MAX_RETRY_LIMIT + 1).is_err());
    }
}
