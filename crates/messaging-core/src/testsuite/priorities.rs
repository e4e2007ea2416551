//! Conformance tests of priority topics ([`crate::priority`]). A backend that
//! is not [`Partitioned`](crate::Partitioned) refuses them with a typed error;
//! the suite's partitioned runs test the rest.

use std::sync::Arc;
use std::time::Duration;

use messaging_model::{Message, ValidationError};
use serde_json::json;

use super::{BackendFactory, Recorder, cleanup, quick, service, unique_topic};
use crate::priority::Priority;
use crate::{BackendError, MessagingError, Shared};

/// A priority topic is created once and keeps its layout; a backend without
/// priority topics says so with a typed error; a priority that is not high,
/// normal or low is refused at publish on any backend.
pub async fn a_priority_topic_keeps_its_layout_and_bad_priorities_are_refused(
    factory: impl BackendFactory,
) {
    let backend = factory.backend().await;
    let service = service(&backend);
    let topic = unique_topic("priority-layout");
    let bad = Message::new(topic.as_str(), json!({}))
        .expect("message")
        .with_metadata(crate::priority::PRIORITY_KEY, "urgent");
    assert!(matches!(
        service.publish_message(&bad).await,
        Err(MessagingError::Validation(
            ValidationError::InvalidMetadata { .. }
        ))
    ));
    match service.create_priority_topic(&topic).await {
        Err(MessagingError::Backend(BackendError::InvalidPartitions { .. })) => {
            assert!(!backend.is_priority_topic(&topic).await.expect("layout"));
        }
        Ok(()) => {
            assert!(backend.is_priority_topic(&topic).await.expect("layout"));
            service
                .create_priority_topic(&topic)
                .await
                .expect("creating it again is fine");
            let conflict = service.create_partitioned_topic(&topic, 3).await;
            assert!(
                matches!(
                    conflict,
                    Err(MessagingError::Backend(BackendError::LayoutConflict { .. }))
                ),
                "{conflict:?}"
            );
            let plain = unique_topic("priority-plain");
            if !backend.is_priority_topic(&plain).await.expect("layout") {
                service.publish(&plain, json!({})).await.expect("publish");
                let conflict = service.create_priority_topic(&plain).await;
                assert!(
                    matches!(
                        conflict,
                        Err(MessagingError::Backend(BackendError::LayoutConflict { .. }))
                    ),
                    "a plain topic holding messages cannot become a priority topic: {conflict:?}"
                );
            }
            cleanup(&backend, &[&plain]).await;
        }
        Err(other) => panic!("unexpected answer: {other:?}"),
    }
    cleanup(&backend, &[&topic]).await;
}

/// With low, normal and high messages waiting, one consumer taking one at a
/// time takes every high first except for the reads the anti-starvation rule
/// gives the other lanes: of the reads up to the last high, reads 4 and 14
/// (from 0) start with normal and 9 and 19 with low, so exactly two of each
/// are taken before the 20th high. Each lane keeps its order; everything is
/// handled once.
pub async fn high_priority_messages_are_taken_first_and_the_others_still_move(
    factory: impl BackendFactory,
) {
    let backend = factory.backend().await;
    let service = service(&backend);
    let topic = unique_topic("priorities");
    if service.create_priority_topic(&topic).await.is_err() {
        // Refused with a typed error: the layout test checks that.
        return;
    }
    let mut messages = Vec::new();
    for (priority, count) in [
        (Priority::Low, 30),
        (Priority::Normal, 5),
        (Priority::High, 20),
    ] {
        for n in 0..count {
            messages.push(
                priority.set_on(
                    Message::new(
                        topic.as_str(),
                        json!({ "n": n, "priority": priority.as_str() }),
                    )
                    .expect("message"),
                ),
            );
        }
    }
    for message in &messages {
        service.publish_message(message).await.expect("publish");
    }
    let recorder = Recorder::new();
    let handler: Arc<dyn crate::MessageHandler> = recorder.succeeding();
    service
        .subscribe_with(
            &topic,
            quick("g")
                .with_concurrency(1)
                .with_batch_size(1)
                .with_visibility_timeout(Duration::from_secs(30)),
            Shared(handler),
        )
        .await
        .expect("subscribe");
    recorder
        .wait_until("every message", |seen| seen.len() >= messages.len())
        .await;
    service.shutdown().await;
    let order: Vec<(String, i64)> = recorder
        .seen()
        .iter()
        .map(|(message, _)| {
            (
                message.payload["priority"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                message.payload["n"].as_i64().unwrap_or(-1),
            )
        })
        .collect();
    assert_eq!(order.len(), messages.len(), "each handled once: {order:?}");
    let last_high = order
        .iter()
        .rposition(|(priority, _)| priority == "high")
        .expect("highs handled");
    let before = |lane: &str| order[..last_high].iter().filter(|(p, _)| p == lane).count();
    assert_eq!(
        (before("normal"), before("low")),
        (2, 2),
        "normal and low taken before the last high: {order:?}"
    );
    for lane in ["high", "normal", "low"] {
        let ns: Vec<i64> = order
            .iter()
            .filter(|(p, _)| p == lane)
            .map(|(_, n)| *n)
            .collect();
        assert!(
            ns.windows(2).all(|pair| pair[0] < pair[1]),
            "{lane} out of order: {ns:?}"
        );
    }
    cleanup(&backend, &[&topic]).await;
}
