//! Property tests of the model's validation, which the Redis decoder applies to
//! every entry: random topics, payloads and messages never panic, and what is
//! accepted keeps the documented limits. (Here rather than in messaging-model,
//! which has no proptest dev-dependency yet.)
//!
//! A fixed case count and seed, so CI runs the same cases every time:
//! `PROPTEST_CASES` and `PROPTEST_RNG_SEED` override them (the seed in use is
//! printed).

use messaging_model::{
    MAX_JSON_DEPTH, MAX_PAYLOAD_BYTES, MAX_RETRY_LIMIT, MAX_TOPIC_LEN, Message, ValidationError,
};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed};
use serde_json::json;

const CASES: u32 = 1_000;
const SEED: u64 = 0x6d6f_6465_6c5f_7631;

fn config() -> Config {
    // Config::default() reads PROPTEST_CASES and PROPTEST_RNG_SEED.
    let mut config = Config::default();
    if std::env::var_os("PROPTEST_CASES").is_none() {
        config.cases = CASES;
    }
    if std::env::var_os("PROPTEST_RNG_SEED").is_none() {
        config.rng_seed = RngSeed::Fixed(SEED);
    }
    config.failure_persistence = None;
    eprintln!(
        "proptest: {} cases, seed {:?} (PROPTEST_CASES, PROPTEST_RNG_SEED)",
        config.cases, config.rng_seed
    );
    config
}

fn json_value(depth: u32) -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
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

/// An object nested `depth` levels (`{}` is 1).
fn nested(depth: usize) -> serde_json::Value {
    (1..depth).fold(json!({}), |inner, level| {
        if level % 2 == 0 {
            json!({ "k": inner })
        } else {
            json!({ "a": [inner] })
        }
    })
}

/// The depth of a value as the model counts it (a scalar 0, `{}` 1).
fn depth(value: &serde_json::Value) -> usize {
    match value {
        serde_json::Value::Array(items) => 1 + items.iter().map(depth).max().unwrap_or(0),
        serde_json::Value::Object(map) => 1 + map.values().map(depth).max().unwrap_or(0),
        _ => 0,
    }
}

fn topic() -> impl Strategy<Value = String> {
    prop_oneof![
        "[A-Za-z0-9][A-Za-z0-9._-]{0,20}",
        ".{0,20}",
        "[a-z:{} ]{0,8}",
        (120usize..140).prop_map(|len| "t".repeat(len)),
    ]
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn topics_are_accepted_exactly_as_documented(topic in topic()) {
        let documented = !topic.is_empty()
            && topic.len() <= MAX_TOPIC_LEN
            && topic.as_bytes()[0].is_ascii_alphanumeric()
            && topic.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
        let checked = messaging_model::validate_topic(&topic);
        prop_assert_eq!(checked.is_ok(), documented, "{:?}: {:?}", topic, checked);
        if let Err(error) = checked {
            let typed = matches!(error, ValidationError::InvalidTopic { .. });
            prop_assert!(typed, "{:?}", error);
        }
    }

    #[test]
    fn payloads_are_accepted_only_within_the_limits(
        payload in prop_oneof![
            json_value(5),
            (MAX_JSON_DEPTH - 2..MAX_JSON_DEPTH + 3).prop_map(nested),
        ],
    ) {
        let checked = messaging_model::validate_payload(&payload);
        let size = serde_json::to_vec(&payload).expect("encodable").len();
        let documented = payload.is_object() && depth(&payload) <= MAX_JSON_DEPTH && size <= MAX_PAYLOAD_BYTES;
        prop_assert_eq!(checked.is_ok(), documented, "{:?}", checked);
        prop_assert_eq!(
            messaging_model::json_depth_exceeds(&payload, MAX_JSON_DEPTH),
            depth(&payload) > MAX_JSON_DEPTH
        );
        if checked.is_ok() {
            prop_assert_eq!(messaging_model::payload_size_checked(&payload), Ok(size));
        }
    }

    #[test]
    fn messages_validate_without_panicking(
        topic in topic(),
        payload in json_value(3),
        metadata in prop::collection::btree_map(".{0,8}", ".{0,8}", 0..4),
        retry in any::<u32>(),
        max_retry in any::<u32>(),
    ) {
        if let Ok(mut message) = Message::new(&topic, payload.clone()) {
            prop_assert!(message.validate().is_ok());
            message.metadata = metadata;
            message.retry = retry;
            message.max_retry = max_retry;
            let checked = message.validate();
            prop_assert_eq!(checked.is_ok(), max_retry <= MAX_RETRY_LIMIT, "{:?}", checked);
            let _ = message.can_retry();
            prop_assert_eq!(message.clone().with_max_retry(max_retry).is_ok(), max_retry <= MAX_RETRY_LIMIT);
            // What a backend stores reads back as the same message, floats
            // included (serde_json's `float_roundtrip`, which this crate enables).
            let json = serde_json::to_vec(&message).expect("encodable");
            let back: Message = serde_json::from_slice(&json).expect("decodable");
            prop_assert_eq!(back, message);
        } else {
            let topic_ok = messaging_model::validate_topic(&topic).is_ok();
            let payload_ok = messaging_model::validate_payload(&payload).is_ok();
            prop_assert!(!(topic_ok && payload_ok));
        }
    }

    #[test]
    fn mutated_message_json_never_panics(
        payload in json_value(2),
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..6),
    ) {
        let payload = match payload {
            serde_json::Value::Object(map) => serde_json::Value::Object(map),
            other => json!({ "v": other }),
        };
        let message = Message::new("a.b", payload).expect("valid");
        let mut json = serde_json::to_vec(&message).expect("encodable");
        for (at, byte) in edits {
            let at = at.index(json.len());
            json[at] = byte;
        }
        if let Ok(read) = serde_json::from_slice::<Message>(&json) {
            let _ = read.validate();
            let _ = read.validate_sized();
        }
    }

    #[test]
    fn delays_and_batches_never_panic(
        secs in any::<u64>(),
        nanos in 0u32..1_000_000_000,
        messages in any::<usize>(),
        bytes in any::<usize>(),
    ) {
        let delay = std::time::Duration::new(secs, nanos);
        prop_assert_eq!(messaging_model::validate_delay(delay).is_ok(), delay <= messaging_model::MAX_DELAY);
        prop_assert_eq!(
            messaging_model::validate_batch(messages, bytes).is_ok(),
            messages <= messaging_model::MAX_BATCH_MESSAGES && bytes <= messaging_model::MAX_BATCH_BYTES
        );
    }
}
