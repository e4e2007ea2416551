//! Property tests of the entry decoder and the reply readers: random and
//! mutated entries never panic, and every entry ends either as a valid message
//! or as a reason and a bounded dead letter that reads back.
//!
//! A fixed case count and seed, so CI runs the same cases every time:
//! `PROPTEST_CASES` and `PROPTEST_RNG_SEED` override them (the seed in use is
//! printed).

use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed};
use redis::Value;
use serde_json::json;

use crate::codec::{self, Fields};

const CASES: u32 = 1_000;
const SEED: u64 = 0x6d65_7373_6167_6531;
const STREAM: &str = "{p:props.topic}:stream";
const TOPIC: &str = "props.topic";
const ENTRY_ID: &str = "1712345678901-7";

fn config() -> Config {
    // Config::default() reads PROPTEST_CASES and PROPTEST_RNG_SEED.
    let mut config = Config::default();
    if std::env::var_os("PROPTEST_CASES").is_none() {
        config.cases = CASES;
    }
    if std::env::var_os("PROPTEST_RNG_SEED").is_none() {
        config.rng_seed = RngSeed::Fixed(SEED);
    }
    // Deterministic already: no regression files in the source tree.
    config.failure_persistence = None;
    eprintln!(
        "proptest: {} cases, seed {:?} (PROPTEST_CASES, PROPTEST_RNG_SEED)",
        config.cases, config.rng_seed
    );
    config
}

/// Random JSON, nested up to `depth` levels.
fn json_value(depth: u32) -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<u64>().prop_map(serde_json::Value::from),
        any::<f64>().prop_map(serde_json::Value::from),
        ".{0,12}".prop_map(serde_json::Value::from),
    ];
    leaf.prop_recursive(depth, 256, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(serde_json::Value::from),
            prop::collection::btree_map(".{0,6}", inner, 0..6)
                .prop_map(|map| serde_json::Value::Object(map.into_iter().collect())),
        ]
    })
}

/// A JSON value nested exactly `depth` levels deep (arrays and objects in turn).
fn nested(depth: usize) -> serde_json::Value {
    (0..depth).fold(json!(1), |inner, level| {
        if level % 2 == 0 {
            json!([inner])
        } else {
            json!({ "k": inner })
        }
    })
}

/// The message fields an `m` object may hold, with well- and ill-typed values.
fn message_field() -> impl Strategy<Value = (String, serde_json::Value)> {
    let name = prop_oneof![
        Just("id"),
        Just("topic"),
        Just("payload"),
        Just("metadata"),
        Just("status"),
        Just("retry"),
        Just("max_retry"),
        Just("error"),
        Just("created_at"),
        Just("updated_at"),
        Just("processed_at"),
        Just("other"),
    ]
    .prop_map(str::to_owned);
    let value = prop_oneof![
        json_value(3),
        Just(json!(TOPIC)),
        Just(json!("0190a0a0-0000-7000-8000-000000000001")),
        Just(json!("2024-01-02T03:04:05Z")),
        Just(json!("processing")),
        Just(json!(u32::MAX)),
        Just(json!(u64::MAX)),
        Just(json!(-1)),
        Just(json!({"k": "v"})),
        (60usize..70).prop_map(|depth| json!({ "deep": nested(depth) })),
    ];
    (name, value)
}

/// The `m` JSON of an entry: a full message, a minimal object, or random JSON.
fn m_json() -> impl Strategy<Value = Vec<u8>> {
    let full = json_value(2).prop_map(|payload| {
        let payload = match payload {
            serde_json::Value::Object(map) => serde_json::Value::Object(map),
            other => json!({ "v": other }),
        };
        let message = messaging_model::Message::new(TOPIC, payload).expect("a valid message");
        serde_json::to_vec(&message).expect("encodable")
    });
    // The library's own form, but nested about as deep as the limit allows.
    let full_deep = (60usize..70).prop_map(|depth| {
        let mut message = messaging_model::Message::new(TOPIC, json!({})).expect("a valid message");
        message.payload = json!({ "deep": nested(depth) });
        serde_json::to_vec(&message).expect("encodable")
    });
    let minimal = prop::collection::vec(message_field(), 0..8).prop_map(|fields| {
        let object: serde_json::Map<_, _> = fields.into_iter().collect();
        serde_json::to_vec(&object).expect("encodable")
    });
    let random = json_value(4).prop_map(|value| serde_json::to_vec(&value).expect("encodable"));
    prop_oneof![full, full_deep, minimal, random]
}

/// Bytes changed by a few random edits: flips, cuts, insertions.
fn mutated(bytes: Vec<u8>) -> impl Strategy<Value = Vec<u8>> {
    let len = bytes.len().max(1);
    prop::collection::vec((0..len, any::<u8>(), 0u8..4), 0..4).prop_map(move |edits| {
        let mut bytes = bytes.clone();
        for (at, byte, kind) in edits {
            let at = at.min(bytes.len());
            match kind {
                0 if at < bytes.len() => bytes[at] = byte,
                1 => bytes.truncate(at),
                2 => bytes.insert(at, byte),
                _ => bytes.extend_from_slice(b"\"}]{["),
            }
        }
        bytes
    })
}

/// Entries as other producers might write them: an `m` field (exact or
/// mutated), flat fields, random names and bytes, duplicates.
fn fields() -> impl Strategy<Value = Fields> {
    let name = prop_oneof![
        Just(b"m".to_vec()),
        "[a-z_]{1,8}".prop_map(String::into_bytes),
        prop::collection::vec(any::<u8>(), 0..8),
    ];
    let value = prop_oneof![
        m_json(),
        m_json().prop_flat_map(mutated),
        ".{0,16}".prop_map(String::into_bytes),
        prop::collection::vec(any::<u8>(), 0..32),
    ];
    prop::collection::vec((name, value), 0..6)
}

/// Random Redis replies, nested.
fn reply() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Nil),
        Just(Value::Okay),
        any::<i64>().prop_map(Value::Int),
        any::<f64>().prop_map(Value::Double),
        prop::collection::vec(any::<u8>(), 0..12).prop_map(Value::BulkString),
        "[0-9]{1,13}-[0-9]{1,3}".prop_map(|id| Value::BulkString(id.into_bytes())),
        ".{0,8}".prop_map(Value::SimpleString),
    ];
    leaf.prop_recursive(4, 64, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..7).prop_map(Value::Array),
            prop::collection::vec((inner.clone(), inner), 0..4).prop_map(Value::Map),
        ]
    })
}

/// What the read path does with an entry: a valid message, or a reason and a
/// dead letter that stays bounded and reads back as one.
fn settle(fields: &Fields) -> Result<(), TestCaseError> {
    match codec::decode(STREAM, TOPIC, ENTRY_ID, fields) {
        Ok(message) => {
            prop_assert_eq!(&message.topic, TOPIC);
            prop_assert_eq!(message.status, messaging_model::MessageStatus::Processing);
            prop_assert!(
                message.validate().is_ok(),
                "decoded but invalid: {:?}",
                message.validate()
            );
        }
        Err(reason) => {
            prop_assert!(!reason.is_empty());
            let reason = codec::bounded_reason(reason);
            prop_assert!(reason.len() <= codec::MAX_REASON_BYTES);
            let dead = codec::undecodable_message(
                TOPIC,
                ENTRY_ID,
                fields,
                &reason,
                codec::KEPT_ENTRY_BYTES,
            );
            let json = codec::encode(&dead).expect("a dead letter encodes");
            prop_assert!(json.len() < 512 * 1024);
            // As lua/dead_letter.lua writes it.
            let stored: Fields = vec![
                (b"m".to_vec(), json),
                (b"g".to_vec(), b"g".to_vec()),
                (b"e".to_vec(), reason.clone().into_bytes()),
                (b"a".to_vec(), b"1".to_vec()),
            ];
            let read = codec::decode_dead_letter("1712345678902-0", &stored);
            prop_assert!(read.is_ok(), "{:?}", read);
            prop_assert_eq!(read.expect("checked").error, reason);
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn random_entries_decode_or_dead_letter(fields in fields()) {
        settle(&fields)?;
    }

    #[test]
    fn mutated_messages_decode_or_dead_letter(
        json in m_json().prop_flat_map(mutated),
        extra in prop::option::of(("[a-z]{1,4}", ".{0,8}")),
    ) {
        let mut fields: Fields = vec![(b"m".to_vec(), json)];
        if let Some((name, value)) = extra {
            fields.push((name.into_bytes(), value.into_bytes()));
        }
        settle(&fields)?;
    }

    #[test]
    fn random_dead_letter_entries_never_panic(fields in fields(), id in "[0-9-]{0,16}") {
        let _ = codec::decode_dead_letter(&id, &fields);
        let _ = codec::is_stream_id(&id);
        let _ = codec::id_order(&id);
        let _ = codec::id_time(&id);
    }

    #[test]
    fn random_replies_never_panic(value in reply()) {
        let _ = codec::entries(value.clone());
        let _ = codec::read_reply_entries(value.clone());
        let _ = codec::fields(value.clone());
        let _ = codec::triples(codec::items(value));
    }
}
