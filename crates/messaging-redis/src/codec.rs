//! Encoding messages into stream entries and reading Redis replies.

use chrono::{DateTime, Utc};
use messaging_core::{BackendError, DeadLetter};
use messaging_model::{Message, MessageStatus, ValidationError};
use redis::Value;
use serde_json::json;

/// The stream field holding a message's JSON.
pub(crate) const MESSAGE_FIELD: &str = "m";

/// The field/value pairs of one stream entry.
pub(crate) type Fields = Vec<(Vec<u8>, Vec<u8>)>;

/// One entry as read, before decoding.
#[derive(Debug)]
pub(crate) struct RawEntry {
    pub(crate) id: String,
    pub(crate) delivery_count: u32,
    pub(crate) fields: Fields,
}

pub(crate) fn encode(message: &Message) -> Result<Vec<u8>, BackendError> {
    serde_json::to_vec(message).map_err(BackendError::command)
}

/// Checks a message as [`Message::validate`] does, given the length of its JSON:
/// a message whose whole JSON is within the payload limit has a payload within
/// it too, so the payload is measured (serialised again) only when it may not be.
fn check_limits(message: &Message, json_len: usize) -> Result<(), ValidationError> {
    messaging_model::validate_topic(&message.topic)?;
    if !message.payload.is_object() || json_len > messaging_model::MAX_PAYLOAD_BYTES {
        messaging_model::validate_payload(&message.payload)?;
    }
    messaging_model::validate_max_retry(message.max_retry)
}

/// The JSON of a message, after checking it.
pub(crate) fn encode_valid(message: &Message) -> Result<Vec<u8>, BackendError> {
    let json = encode(message)?;
    check_limits(message, json.len())?;
    Ok(json)
}

/// The message of an entry, or why it cannot be decoded.
pub(crate) fn decode(fields: &Fields) -> Result<Message, String> {
    let json = fields
        .iter()
        .find(|(name, _)| name == MESSAGE_FIELD.as_bytes())
        .map(|(_, value)| value)
        .ok_or_else(|| format!("no `{MESSAGE_FIELD}` field"))?;
    let mut message: Message =
        serde_json::from_slice(json).map_err(|error| format!("not a message: {error}"))?;
    check_limits(&message, json.len()).map_err(|error| format!("invalid message: {error}"))?;
    message.status = MessageStatus::Processing;
    Ok(message)
}

/// What goes to the dead-letter queue for an entry that cannot be decoded: a
/// message of the topic whose payload keeps every field of the entry (UTF-8 as
/// text, anything else as hex), so nothing is lost.
pub(crate) fn undecodable_message(
    topic: &str,
    entry_id: &str,
    fields: &Fields,
    reason: &str,
) -> Message {
    let text = |bytes: &[u8]| match std::str::from_utf8(bytes) {
        Ok(text) => json!(text),
        Err(_) => json!({ "hex": hex(bytes) }),
    };
    let kept: Vec<serde_json::Value> = fields
        .iter()
        .map(|(name, value)| json!([text(name), text(value)]))
        .collect();
    let now = Utc::now();
    // Built field by field: the topic came from a key and the payload may exceed
    // the publishing limit; neither must keep the entry out of the queue.
    let mut message = Message::new("undecodable", json!({}))
        .unwrap_or_else(|_| unreachable!("valid literal topic"));
    message.topic = topic.to_owned();
    message.payload = json!({ "undecodable_entry": { "id": entry_id, "fields": kept } });
    message.status = MessageStatus::Failed;
    message.error = Some(reason.to_owned());
    message.max_retry = 0;
    message.updated_at = now;
    message.processed_at = Some(now);
    message
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The time part of a stream id, as a time.
pub(crate) fn id_time(id: &str) -> Option<DateTime<Utc>> {
    let millis: i64 = id.split('-').next()?.parse().ok()?;
    DateTime::from_timestamp_millis(millis)
}

/// A stream id as numbers, to sort ids as Redis does (unparsable ones last).
pub(crate) fn id_order(id: &str) -> (u64, u64) {
    let (ms, seq) = id.split_once('-').unwrap_or((id, "0"));
    (
        ms.parse().unwrap_or(u64::MAX),
        seq.parse().unwrap_or(u64::MAX),
    )
}

/// True for `<ms>-<seq>` or `<ms>`: what a dead letter id looks like.
pub(crate) fn is_stream_id(id: &str) -> bool {
    let mut parts = id.splitn(2, '-');
    let digits = |part: Option<&str>| {
        part.is_some_and(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
    };
    let first = parts.next();
    let second = parts.next();
    digits(first) && (second.is_none() || digits(second))
}

/// A dead letter from the fields of its entry in the dead-letter stream.
pub(crate) fn decode_dead_letter(id: &str, fields: &Fields) -> Result<DeadLetter, String> {
    let field = |name: &str| {
        fields
            .iter()
            .find(|(key, _)| key == name.as_bytes())
            .map(|(_, value)| value.as_slice())
    };
    let text = |name: &str| -> Result<String, String> {
        let value = field(name).ok_or_else(|| format!("no `{name}` field"))?;
        String::from_utf8(value.to_vec()).map_err(|_| format!("`{name}` is not UTF-8"))
    };
    let message: Message = serde_json::from_slice(field(MESSAGE_FIELD).ok_or("no `m` field")?)
        .map_err(|error| format!("not a message: {error}"))?;
    Ok(DeadLetter {
        id: id.to_owned(),
        group: text("g")?,
        message,
        error: text("e")?,
        attempts: text("a")?
            .parse()
            .map_err(|_| "`a` is not a count".to_owned())?,
        dead_at: id_time(id).ok_or("the id holds no time")?,
    })
}

// Reading replies. Redis answers in RESP2 unless the URL asks for RESP3, and
// scripts answer with arrays; these accept both shapes where they differ.

pub(crate) fn bytes(value: Value) -> Option<Vec<u8>> {
    match value {
        Value::BulkString(bytes) => Some(bytes),
        Value::SimpleString(text) | Value::VerbatimString { text, .. } => Some(text.into_bytes()),
        Value::Int(number) => Some(number.to_string().into_bytes()),
        Value::Okay => Some(b"OK".to_vec()),
        _ => None,
    }
}

pub(crate) fn string(value: &Value) -> Option<String> {
    match value {
        Value::BulkString(bytes) => String::from_utf8(bytes.clone()).ok(),
        Value::SimpleString(text) | Value::VerbatimString { text, .. } => Some(text.clone()),
        Value::Int(number) => Some(number.to_string()),
        _ => None,
    }
}

pub(crate) fn int(value: &Value) -> Option<i64> {
    match value {
        Value::Int(number) => Some(*number),
        Value::Double(number) => Some(*number as i64),
        other => string(other)?.parse().ok(),
    }
}

pub(crate) fn items(value: Value) -> Vec<Value> {
    match value {
        Value::Array(items) | Value::Set(items) => items,
        _ => Vec::new(),
    }
}

/// Field/value pairs from a flat array (or a map).
pub(crate) fn fields(value: Value) -> Option<Fields> {
    match value {
        Value::Map(pairs) => pairs
            .into_iter()
            .map(|(key, value)| Some((bytes(key)?, bytes(value)?)))
            .collect(),
        Value::Array(flat) => {
            let mut pairs = Vec::with_capacity(flat.len() / 2);
            let mut flat = flat.into_iter();
            while let (Some(key), Some(value)) = (flat.next(), flat.next()) {
                pairs.push((bytes(key)?, bytes(value)?));
            }
            Some(pairs)
        }
        _ => None,
    }
}

/// `[[id, [field, value, ...]], ...]`: entries of a stream (XRANGE, or one
/// stream's part of an XREADGROUP reply). Entries without fields are left out.
pub(crate) fn entries(value: Value) -> Vec<(String, Fields)> {
    items(value)
        .into_iter()
        .filter_map(|entry| {
            let mut parts = items(entry).into_iter();
            let id = string(&parts.next()?)?;
            let fields = fields(parts.next()?)?;
            Some((id, fields))
        })
        .collect()
}

/// The entries of the one stream an XREADGROUP asked for; nil (timed out) is none.
pub(crate) fn read_reply_entries(value: Value) -> Vec<(String, Fields)> {
    match value {
        Value::Map(streams) => streams
            .into_iter()
            .next()
            .map(|(_, entries_value)| entries(entries_value)),
        Value::Array(streams) => streams
            .into_iter()
            .next()
            .and_then(|stream| items(stream).into_iter().nth(1))
            .map(entries),
        _ => None,
    }
    .unwrap_or_default()
}

/// The flat `id, delivery count, fields, ...` triples our read scripts return.
pub(crate) fn triples(values: Vec<Value>) -> Vec<RawEntry> {
    let mut entries = Vec::with_capacity(values.len() / 3);
    let mut values = values.into_iter();
    while let (Some(id), Some(count), Some(fields_value)) =
        (values.next(), values.next(), values.next())
    {
        let parsed = (|| {
            Some(RawEntry {
                id: string(&id)?,
                delivery_count: u32::try_from(int(&count)?).ok()?,
                fields: fields(fields_value)?,
            })
        })();
        entries.extend(parsed);
    }
    entries
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip_through_an_entry() {
        let message = Message::new("a.b", json!({"x": [1, "ü"]}))
            .unwrap()
            .with_metadata("k", "v");
        let fields = vec![(b"m".to_vec(), encode(&message).unwrap())];
        let decoded = decode(&fields).unwrap();
        assert_eq!(decoded.status, MessageStatus::Processing);
        assert_eq!(decoded.payload, message.payload);
        assert_eq!(decoded.metadata, message.metadata);
    }

    #[test]
    fn undecodable_entries_keep_every_byte() {
        let fields = vec![
            (b"m".to_vec(), vec![0xff, b'{']),
            (b"other".to_vec(), b"text".to_vec()),
        ];
        let reason = decode(&fields).unwrap_err();
        assert!(reason.starts_with("not a message"), "{reason}");
        let message = undecodable_message("a.b", "1-0", &fields, &reason);
        assert_eq!(
            message.payload,
            json!({ "undecodable_entry": { "id": "1-0", "fields": [["m", {"hex": "ff7b"}], ["other", "text"]] } })
        );
        assert_eq!(message.error.as_deref(), Some(reason.as_str()));
        assert!(decode(&[].to_vec()).unwrap_err().contains("no `m` field"));
    }

    #[test]
    fn recognises_stream_ids() {
        for good in ["0", "1-0", "1712345678901-12"] {
            assert!(is_stream_id(good), "{good}");
        }
        for bad in ["", "-", "1-", "-1", "a-1", "1-2-3", "1 2"] {
            assert!(!is_stream_id(bad), "{bad}");
        }
        assert_eq!(id_time("1000-5").unwrap().timestamp_millis(), 1000);
    }
}
