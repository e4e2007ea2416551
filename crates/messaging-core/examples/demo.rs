//! The messaging core end to end on the embedded in-memory backend, no server needed.
//!
//! Run it with: `cargo run -p messaging-core --example demo`
//!
//! 1. a `user.registered` event is published and handled;
//! 2. a handler that keeps failing retries with backoff, then lands in the
//!    dead-letter queue, from where it is replayed once the handler is fixed;
//! 3. a delayed message fires on time.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use messaging_core::{HandlerError, MessagingService, RetryPolicy, SubscribeOptions};
use messaging_model::{Message, topics};
use serde_json::json;
use tokio::sync::mpsc;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let service = MessagingService::in_memory()
        .with_max_retry(2)?
        .with_subscribe_defaults(SubscribeOptions::new("demo").with_retry(
            RetryPolicy::exponential(Duration::from_millis(100), Duration::from_secs(1)),
        ));
    let (events, mut seen) = mpsc::unbounded_channel::<String>();

    // 1. A welcome handler for user.registered.
    let welcome = events.clone();
    service
        .subscribe(topics::USER_REGISTERED, move |message: Message| {
            let events = welcome.clone();
            async move {
                let email = message.payload["email"].as_str().unwrap_or("?").to_owned();
                events
                    .send(format!(
                        "handled user.registered: welcome email for {email}"
                    ))
                    .map_err(HandlerError::permanent)
            }
        })
        .await?;
    service
        .publish(
            topics::USER_REGISTERED,
            json!({"user_id": 42, "email": "ada@example.com"}),
        )
        .await?;
    println!("1. published user.registered");
    println!("   {}", seen.recv().await.ok_or("handler gone")?);

    // 2. A handler whose provider is down: retried, then dead-lettered.
    let provider_up = Arc::new(AtomicBool::new(false));
    let up = provider_up.clone();
    let attempts = events.clone();
    service
        .subscribe(topics::WALLET_RECHARGED, move |message: Message| {
            let up = up.clone();
            let events = attempts.clone();
            async move {
                if up.load(Ordering::SeqCst) {
                    let _ = events.send("recharge notice sent after replay".to_owned());
                    return Ok(());
                }
                let _ = events.send(format!(
                    "attempt {} failed: SMS provider down",
                    message.retry + 1
                ));
                Err(HandlerError::retry("SMS provider down"))
            }
        })
        .await?;
    service
        .publish(
            topics::WALLET_RECHARGED,
            json!({"user_id": 42, "amount": 100}),
        )
        .await?;
    println!("2. published wallet.recharged to a failing handler (max_retry = 2)");
    for _ in 0..3 {
        println!("   {}", seen.recv().await.ok_or("handler gone")?);
    }
    let dead = loop {
        let dead = service.dead_letters(topics::WALLET_RECHARGED, 10).await?;
        if let Some(first) = dead.into_iter().next() {
            break first;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    println!(
        "   dead-lettered after {} attempts, last error: {}",
        dead.attempts, dead.error
    );
    provider_up.store(true, Ordering::SeqCst);
    service
        .replay_dead_letter(topics::WALLET_RECHARGED, &dead.id)
        .await?;
    println!("   provider back: replayed dead letter {}", dead.id);
    println!("   {}", seen.recv().await.ok_or("handler gone")?);

    // 3. A delayed message.
    let fired = events.clone();
    service
        .subscribe(topics::RECOMMENDATION_REFRESH, move |_message: Message| {
            let events = fired.clone();
            async move {
                events
                    .send("recommendation.refresh fired".to_owned())
                    .map_err(HandlerError::permanent)
            }
        })
        .await?;
    let delay = Duration::from_millis(500);
    let published = Instant::now();
    service
        .publish_delayed(
            topics::RECOMMENDATION_REFRESH,
            json!({"user_id": 42}),
            delay,
        )
        .await?;
    println!("3. published recommendation.refresh with a {delay:?} delay");
    println!("   {}", seen.recv().await.ok_or("handler gone")?);
    let waited = published.elapsed();
    println!(
        "   after {waited:?} (asked for {delay:?}; never early: {})",
        waited >= delay
    );

    service.shutdown().await;
    println!("done: every message handled, nothing left pending");
    Ok(())
}
