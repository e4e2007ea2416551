//! Conformance tests of flow limits ([`crate::limit`]): the backend's buckets
//! and the runtime's enforcement over them.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use chrono::Utc;
use messaging_model::Message;
use serde_json::json;
use uuid::Uuid;

use super::{
    BackendFactory, Recorder, cleanup, dead_letter_count, eventually, quick, service, unique_topic,
};
use crate::limit::{FlowLimit, LimitBucket, LimitKey, Rate};
use crate::{HandlerError, MessageHandler, Shared};

fn unique_name(what: &str) -> String {
    let id = Uuid::now_v7().simple().to_string();
    format!("conf-{what}-{}", &id[id.len() - 12..])
}

/// Permits taken ahead ([`crate::limit::LimitBackend::reserve_permits_ahead`])
/// count in the bucket like any other: under 64/640s (one each 10 s, a burst
/// of 64) a fresh bucket gives the one asked and 30 ahead (half of the burst
/// stays free), a second call none ahead, and once the other 32 of the burst
/// are taken the next permit is in the future.
pub async fn permits_taken_ahead_count_in_the_bucket_and_leave_half_its_burst(
    factory: impl BackendFactory,
) {
    let backend = factory.backend().await;
    let limits = backend
        .limit_backend()
        .expect("the backend keeps flow limits");
    let rate = Rate::new(64, Duration::from_secs(640)).expect("rate");
    let bucket = LimitBucket {
        limit: unique_name("ahead"),
        key: "tenant".to_owned(),
    };
    let (first, ahead) = limits
        .reserve_permits_ahead(&bucket, rate, 1, 1_000)
        .await
        .expect("reserve ahead");
    assert_eq!((first.count(), first.wait(0)), (1, Duration::ZERO));
    assert_eq!(ahead, 30, "as many ahead as leave half of the burst");
    let (second, none) = limits
        .reserve_permits_ahead(&bucket, rate, 1, 1_000)
        .await
        .expect("reserve ahead");
    assert_eq!(second.wait(0), Duration::ZERO);
    assert_eq!(none, 0, "past half of its burst a bucket gives none ahead");
    let rest = limits
        .reserve_permits(&bucket, rate, 32)
        .await
        .expect("reserve the rest of the burst");
    assert_eq!(rest.wait(31), Duration::ZERO, "the 64th of the burst");
    let next = limits
        .reserve_permits(&bucket, rate, 1)
        .await
        .expect("reserve")
        .wait(0);
    assert!(
        next > Duration::from_secs(5),
        "the 65th permit is due 10 s after the first: {next:?}"
    );
}

/// The backend's buckets: permits past the burst are handed out in the
/// future (5 s apart under 2/10s, while the test takes well under 3 s), keys and
/// limits do not share; slots go up to `max`, a holder renews its own, a
/// released or lapsed slot is free again, and holders asking together get
/// the free slots in the order they ask.
pub async fn limit_buckets_hand_out_permits_and_slots_as_the_contract_says(
    factory: impl BackendFactory,
) {
    let backend = factory.backend().await;
    let limits = backend
        .limit_backend()
        .expect("the backend keeps flow limits");
    let name = unique_name("buckets");
    let bucket = |key: &str| LimitBucket {
        limit: name.clone(),
        key: key.to_owned(),
    };
    let ten_seconds = Rate::new(2, Duration::from_secs(10)).expect("rate");
    let a = bucket("tenant-a");
    assert_eq!(
        limits
            .reserve_permits(&a, ten_seconds, 1)
            .await
            .expect("reserve")
            .wait(0),
        Duration::ZERO
    );
    assert_eq!(
        limits
            .reserve_permits(&a, ten_seconds, 1)
            .await
            .expect("reserve")
            .wait(0),
        Duration::ZERO,
        "the burst of 2"
    );
    let third = limits
        .reserve_permits(&a, ten_seconds, 1)
        .await
        .expect("reserve")
        .wait(0);
    assert!(
        third > Duration::from_secs(2),
        "the third permit is due 5 s after the first: {third:?}"
    );
    let fourth = limits
        .reserve_permits(&a, ten_seconds, 1)
        .await
        .expect("reserve")
        .wait(0);
    assert!(
        fourth > third + Duration::from_secs(2),
        "and the fourth 5 s after it: {fourth:?}"
    );
    // A batch of 3 under 4/10s takes 3 of the burst of 4 at once.
    let four = Rate::new(4, Duration::from_secs(10)).expect("rate");
    let batched = bucket("batched");
    let three = limits
        .reserve_permits(&batched, four, 3)
        .await
        .expect("reserve three");
    assert_eq!((three.count(), three.wait(2)), (3, Duration::ZERO));
    assert_eq!(
        limits
            .reserve_permits(&batched, four, 1)
            .await
            .expect("reserve")
            .wait(0),
        Duration::ZERO,
        "the 4th of the burst"
    );
    let fifth = limits
        .reserve_permits(&batched, four, 1)
        .await
        .expect("reserve")
        .wait(0);
    assert!(
        fifth > Duration::from_secs(1),
        "then one each 2.5 s: {fifth:?}"
    );
    assert_eq!(
        limits
            .reserve_permits(&bucket("tenant-b"), ten_seconds, 1)
            .await
            .expect("reserve")
            .wait(0),
        Duration::ZERO,
        "another key has its own bucket"
    );
    let other_limit = LimitBucket {
        limit: unique_name("other"),
        key: "tenant-a".to_owned(),
    };
    assert_eq!(
        limits
            .reserve_permits(&other_limit, ten_seconds, 1)
            .await
            .expect("reserve")
            .wait(0),
        Duration::ZERO
    );

    let slots = bucket("slots");
    let long = Duration::from_secs(60);
    let names = |holders: &[&str]| -> Vec<String> {
        holders.iter().map(|holder| (*holder).to_owned()).collect()
    };
    assert_eq!(
        limits
            .acquire_slots(&slots, 3, &names(&["h1"]), long)
            .await
            .expect("acquire"),
        [true]
    );
    assert_eq!(
        limits
            .acquire_slots(&slots, 3, &names(&["h2", "h3", "h4", "h5"]), long)
            .await
            .expect("acquire"),
        [true, true, false, false],
        "fewer slots free than holders asking: the first ones get them"
    );
    assert_eq!(
        limits
            .acquire_slots(&slots, 3, &names(&["h6", "h1", "h3"]), long)
            .await
            .expect("renew"),
        [false, true, true],
        "every slot held: holders renew their own, others get none"
    );
    assert!(
        limits
            .acquire_slots(&slots, 3, &[], long)
            .await
            .expect("asking for nothing is fine")
            .is_empty()
    );
    limits
        .release_slots(&slots, &names(&["h1", "h2"]))
        .await
        .expect("release");
    assert_eq!(
        limits
            .acquire_slots(&slots, 3, &names(&["h4", "h4", "h5", "h6"]), long)
            .await
            .expect("acquire"),
        [true, true, true, false],
        "released slots are free; a holder named twice takes one slot"
    );
    limits
        .release_slots(&slots, &names(&["h3", "h4", "h5", "never-held"]))
        .await
        .expect("releasing what is not held is fine");
    limits
        .release_slots(&slots, &[])
        .await
        .expect("releasing nothing is fine");
    assert_eq!(
        limits
            .acquire_slots(&slots, 3, &names(&["a", "b", "c"]), long)
            .await
            .expect("acquire"),
        [true, true, true],
        "all free again"
    );
    limits
        .release_slots(&slots, &names(&["a", "b", "c"]))
        .await
        .expect("release");

    let lapsing = bucket("lapsing");
    assert_eq!(
        limits
            .acquire_slots(&lapsing, 1, &names(&["crashed"]), Duration::from_millis(50))
            .await
            .expect("acquire"),
        [true]
    );
    eventually("the crashed holder's lease to lapse", || async {
        let taken = limits
            .acquire_slots(&lapsing, 1, &names(&["next", "after"]), long)
            .await
            .expect("acquire");
        (taken == [true, false]).then_some(())
    })
    .await;
    assert_eq!(
        limits
            .acquire_slots(&lapsing, 1, &names(&["crashed"]), long)
            .await
            .expect("acquire"),
        [false],
        "a lapsed holder has no slot to renew"
    );
    limits
        .release_slots(&lapsing, &names(&["next"]))
        .await
        .expect("release");
}

/// A rate limit per tenant, enforced by two consumers of one group: however
/// slow the machine, the busy tenant's messages never start faster than the
/// rate allows since they were published (burst included); every message is
/// handled once, none is counted as a retry or dead-lettered, and the other
/// tenant's bucket is its own.
pub async fn a_rate_limit_per_key_holds_across_consumers_and_never_counts_a_retry(
    factory: impl BackendFactory,
) {
    rate_limit_holds(
        factory,
        Rate::new(10, Duration::from_millis(500)).expect("rate"),
        30,
    )
    .await;
}

/// The same at 64 per 100 ms with 300 busy messages, where many messages of
/// a consumer ask at once and take their permits in one call together.
pub async fn a_fast_rate_limit_holds_with_permits_taken_together(factory: impl BackendFactory) {
    let rate = Rate::new(64, Duration::from_millis(100)).expect("rate");
    rate_limit_holds(factory, rate, 300).await;
}

async fn rate_limit_holds(factory: impl BackendFactory, rate: Rate, busy_count: usize) {
    let backend = factory.backend().await;
    let topic = unique_topic("rate-limit");
    let (first, second) = (service(&backend), service(&backend));
    let limit =
        FlowLimit::rate(unique_name("rate"), LimitKey::metadata("tenant"), rate).expect("limit");
    let recorder = Recorder::new();
    let handler: Arc<dyn MessageHandler> = recorder.succeeding();
    for (name, service) in [("one", &first), ("two", &second)] {
        service
            .subscribe_with(
                &topic,
                quick("g").with_consumer(name).with_limit(limit.clone()),
                Shared(handler.clone()),
            )
            .await
            .expect("subscribe");
    }
    let published_at = Utc::now();
    let mut ids = BTreeSet::new();
    for (tenant, count) in [("busy", busy_count), ("quiet", 5)] {
        for n in 0..count {
            let message = Message::new(topic.as_str(), json!({ "n": n }))
                .expect("message")
                .with_metadata("tenant", tenant);
            ids.insert(first.publish_message(&message).await.expect("publish"));
        }
    }
    recorder.wait_for_ids(&ids).await;
    first.shutdown().await;
    second.shutdown().await;

    let seen = recorder.seen();
    assert_eq!(seen.len(), ids.len(), "every message handled once");
    assert!(
        seen.iter().all(|(message, _)| message.retry == 0),
        "no wait counted as a retry"
    );
    assert!(
        seen.iter().all(|(message, _)| !message
            .metadata
            .contains_key(crate::limit::LIMIT_RESERVED_KEY)),
        "the handler does not see the runtime's marks"
    );
    assert_eq!(dead_letter_count(&backend, &topic).await, 0);
    let mut busy: Vec<_> = seen
        .iter()
        .filter(|(message, _)| message.metadata["tenant"] == "busy")
        .map(|(_, at)| *at)
        .collect();
    busy.sort();
    // The k-th start (from 0) is no earlier than the k-th permit is due:
    // (k - burst + 1) emission intervals after the publish.
    let interval = rate.emission_interval_micros() as i64;
    let burst = i64::from(rate.permits());
    for (k, at) in busy.iter().enumerate() {
        let earliest = (k as i64 + 1 - burst).max(0) * interval / 1000;
        let since = (*at - published_at).num_milliseconds();
        assert!(
            since + 5 >= earliest,
            "busy message {k} started {since} ms after the publish, before its permit ({earliest} ms)"
        );
    }
    cleanup(&backend, &[&topic]).await;
}

/// At most K messages of one key run at once across two consumers (each with
/// room for 8), the other key likewise; everything is handled once, unretried.
pub async fn a_concurrency_limit_per_key_holds_across_consumers(factory: impl BackendFactory) {
    let backend = factory.backend().await;
    let topic = unique_topic("concurrency-limit");
    let (first, second) = (service(&backend), service(&backend));
    let limit = FlowLimit::concurrency(
        unique_name("conc"),
        LimitKey::payload("/tenant").expect("key"),
        2,
    )
    .expect("limit");
    let recorder = Recorder::new();
    let running: Arc<[AtomicUsize; 2]> = Arc::new([AtomicUsize::new(0), AtomicUsize::new(0)]);
    let most: Arc<[AtomicUsize; 2]> = Arc::new([AtomicUsize::new(0), AtomicUsize::new(0)]);
    let handler: Arc<dyn MessageHandler> = {
        let (recorder, running, most) = (recorder.clone(), running.clone(), most.clone());
        Arc::new(move |message: Message| {
            let (recorder, running, most) = (recorder.clone(), running.clone(), most.clone());
            async move {
                let tenant = usize::from(message.payload["tenant"] == "b");
                let now = running[tenant].fetch_add(1, Ordering::SeqCst) + 1;
                most[tenant].fetch_max(now, Ordering::SeqCst);
                // Work that takes a while, so runs of one key overlap.
                tokio::time::sleep(Duration::from_millis(20)).await;
                running[tenant].fetch_sub(1, Ordering::SeqCst);
                recorder.record(&message);
                Ok::<(), HandlerError>(())
            }
        })
    };
    for (name, service) in [("one", &first), ("two", &second)] {
        service
            .subscribe_with(
                &topic,
                quick("g")
                    .with_consumer(name)
                    .with_concurrency(8)
                    .with_limit(limit.clone()),
                Shared(handler.clone()),
            )
            .await
            .expect("subscribe");
    }
    let mut ids = BTreeSet::new();
    for n in 0..24 {
        let tenant = if n % 3 == 0 { "b" } else { "a" };
        ids.insert(
            first
                .publish(&topic, json!({ "n": n, "tenant": tenant }))
                .await
                .expect("publish"),
        );
    }
    recorder.wait_for_ids(&ids).await;
    first.shutdown().await;
    second.shutdown().await;
    let seen = recorder.seen();
    assert_eq!(seen.len(), ids.len(), "every message handled once");
    assert!(
        seen.iter().all(|(message, _)| message.retry == 0),
        "a full limit is not a retry"
    );
    for (tenant, most) in ["a", "b"].iter().zip(most.iter()) {
        let most = most.load(Ordering::SeqCst);
        assert!(
            most <= 2,
            "tenant {tenant} had {most} messages running at once"
        );
    }
    assert_eq!(dead_letter_count(&backend, &topic).await, 0);
    cleanup(&backend, &[&topic]).await;
}

/// A concurrency limit large enough for a subscription to keep slots for its
/// next message (16: one kept slot per subscription) still holds: across two
/// consumers with room for 32 each, at most 16 of the key run at once, all
/// handled once, unretried; and once both have shut down no slot is held (the
/// kept ones are freed).
pub async fn kept_concurrency_slots_count_in_the_limit_and_are_freed_at_shutdown(
    factory: impl BackendFactory,
) {
    let backend = factory.backend().await;
    let topic = unique_topic("kept-slots");
    let (first, second) = (service(&backend), service(&backend));
    let name = unique_name("kept");
    let limit =
        FlowLimit::concurrency(name.clone(), LimitKey::payload("/tenant").expect("key"), 16)
            .expect("limit");
    let recorder = Recorder::new();
    let running = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(AtomicUsize::new(0));
    let handler: Arc<dyn MessageHandler> = {
        let (recorder, running, most) = (recorder.clone(), running.clone(), most.clone());
        Arc::new(move |message: Message| {
            let (recorder, running, most) = (recorder.clone(), running.clone(), most.clone());
            async move {
                let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(now, Ordering::SeqCst);
                // Work that takes a while, so runs overlap.
                tokio::time::sleep(Duration::from_millis(5)).await;
                running.fetch_sub(1, Ordering::SeqCst);
                recorder.record(&message);
                Ok::<(), HandlerError>(())
            }
        })
    };
    for (consumer, service) in [("one", &first), ("two", &second)] {
        service
            .subscribe_with(
                &topic,
                quick("g")
                    .with_consumer(consumer)
                    .with_concurrency(32)
                    .with_limit(limit.clone()),
                Shared(handler.clone()),
            )
            .await
            .expect("subscribe");
    }
    let mut ids = BTreeSet::new();
    for n in 0..200 {
        ids.insert(
            first
                .publish(&topic, json!({ "n": n, "tenant": "a" }))
                .await
                .expect("publish"),
        );
    }
    recorder.wait_for_ids(&ids).await;
    first.shutdown().await;
    second.shutdown().await;
    let seen = recorder.seen();
    assert_eq!(seen.len(), ids.len(), "every message handled once");
    assert!(seen.iter().all(|(message, _)| message.retry == 0));
    let most = most.load(Ordering::SeqCst);
    assert!(most <= 16, "{most} messages of the key ran at once");
    assert_eq!(dead_letter_count(&backend, &topic).await, 0);
    let limits = backend
        .limit_backend()
        .expect("the backend keeps flow limits");
    let bucket = LimitBucket {
        limit: name,
        key: "a".to_owned(),
    };
    eventually(
        "every slot of the bucket free after the shutdown",
        || async {
            let holders: Vec<String> = (0..16)
                .map(|k| format!("probe-{}-{k}", Uuid::now_v7()))
                .collect();
            let taken = limits
                .acquire_slots(&bucket, 16, &holders, Duration::from_secs(5))
                .await
                .expect("acquire");
            limits
                .release_slots(&bucket, &holders)
                .await
                .expect("release");
            taken.iter().all(|taken| *taken).then_some(())
        },
    )
    .await;
    cleanup(&backend, &[&topic]).await;
}
