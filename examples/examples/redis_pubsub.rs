//! Publish and consume under a consumer group on Redis Streams.
//!
//! ```sh
//! REDIS_URL=redis://127.0.0.1:6379 cargo run -p messaging-examples --example redis_pubsub
//! ```
//!
//! Everything lives under a key prefix of its own, removed at the end.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use messaging_core::{HandlerError, MessagingService, RetryPolicy, SubscribeOptions};
use messaging_model::Message;
use messaging_redis::{RedisBackend, RedisBackendConfig};
use serde_json::json;
use tokio::sync::mpsc;

const TOPIC: &str = "orders.created";

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let prefix = format!("example-{}", uuid::Uuid::now_v7().simple());
    let backend =
        RedisBackend::connect(RedisBackendConfig::new(url.as_str()).with_key_prefix(&prefix))
            .await?;
    let service = MessagingService::new(Arc::new(backend));

    // Published before anyone subscribes: kept until a group has read it.
    for n in 1..=5 {
        service.publish(TOPIC, json!({"order": n})).await?;
    }

    // One group, `billing`; order 3 fails once and is retried after a backoff.
    let (handled, mut handled_rx) = mpsc::unbounded_channel();
    let failed_once = Arc::new(AtomicBool::new(false));
    let options = SubscribeOptions::new("billing").with_retry(RetryPolicy::exponential(
        Duration::from_millis(50),
        Duration::from_secs(1),
    ));
    service
        .subscribe_with(TOPIC, options, move |message: Message| {
            let handled = handled.clone();
            let failed_once = failed_once.clone();
            async move {
                let order = message.payload["order"].as_u64().unwrap_or_default();
                if order == 3 && !failed_once.swap(true, Ordering::SeqCst) {
                    println!("order {order}: the payment provider is down, retrying");
                    return Err(HandlerError::retry("payment provider unavailable"));
                }
                println!("order {order}: charged (attempt {})", message.retry + 1);
                let _ = handled.send(order);
                Ok(())
            }
        })
        .await?;

    let mut seen = Vec::new();
    while seen.len() < 5 {
        match tokio::time::timeout(Duration::from_secs(10), handled_rx.recv()).await {
            Ok(Some(order)) => seen.push(order),
            _ => return Err("orders were not all handled within 10 s".into()),
        }
    }
    seen.sort_unstable();
    assert_eq!(seen, [1, 2, 3, 4, 5]);
    let stats = service.stats(TOPIC).await?;
    println!(
        "all 5 orders handled; {} entries in the stream",
        stats.length
    );

    service.shutdown().await;
    service.delete_topic(TOPIC).await?;
    Ok(())
}
