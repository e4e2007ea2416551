//! `messaging demo`: the whole pipeline, step by step, on the embedded default
//! (in-memory backend and stores, an in-process SMTP server), or on real Redis and
//! PostgreSQL with `--redis URL --database URL`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use messaging_core::{
    HandlerError, MessageBackend, MessagingService, RetryPolicy, SubscribeOptions,
};
use messaging_model::Message;
use serde_json::json;
use tokio::sync::mpsc;

use crate::cli::DemoArgs;

/// How long any step may take before the demo gives up.
const STEP_DEADLINE: Duration = Duration::from_secs(20);
/// The delay of step 3.
const DELAY: Duration = Duration::from_millis(1500);

/// Runs every step; an error when one does not behave as announced.
pub(crate) async fn run(args: DemoArgs) -> anyhow::Result<()> {
    let run_id = uuid::Uuid::now_v7().simple().to_string();
    let (backend, where_) = match &args.redis {
        Some(url) => {
            let prefix = format!("messaging-demo-{run_id}");
            (
                crate::backend::redis(url, &prefix).await?,
                format!("Redis {} (key prefix {prefix})", crate::exit::redact(url)),
            )
        }
        None => (
            Arc::new(messaging_core::InMemoryBackend::new()) as Arc<dyn MessageBackend>,
            "the in-memory backend".to_owned(),
        ),
    };
    println!("messaging demo on {where_}");
    let service = MessagingService::new(backend);
    let outcome = steps(&service, &args).await;
    service.shutdown().await;
    if args.redis.is_some() {
        for topic in service.list_topics().await.unwrap_or_default() {
            let _ = service.delete_topic(&topic).await;
        }
    }
    outcome?;
    println!("\ndone: every step behaved as announced");
    Ok(())
}

async fn steps(service: &MessagingService, args: &DemoArgs) -> anyhow::Result<()> {
    welcome_email(service, args)
        .await
        .context("step 1 (welcome email)")?;
    dead_letter(service)
        .await
        .context("step 2 (retries and dead letter)")?;
    delayed(service).await.context("step 3 (delayed message)")?;
    Ok(())
}

/// Step 1: `user.registered` → welcome email + recorded notification.
async fn welcome_email(service: &MessagingService, args: &DemoArgs) -> anyhow::Result<()> {
    println!(
        "\n1. user.registered is published; the notification listener sends the welcome email"
    );
    let _ = (service, args);
    bail!("the notification pipeline is not integrated yet")
}

/// Step 2: a handler that always fails is retried with backoff, then dead-lettered.
async fn dead_letter(service: &MessagingService) -> anyhow::Result<()> {
    const TOPIC: &str = "demo.flaky";
    println!(
        "\n2. a failing handler is retried with backoff, then its message lands in the dead-letter queue"
    );
    let (attempts_tx, mut attempts) = mpsc::unbounded_channel();
    let counter = Arc::new(AtomicU32::new(0));
    let options = SubscribeOptions::new("flaky-consumer").with_retry(
        RetryPolicy::exponential(Duration::from_millis(100), Duration::from_millis(400))
            .with_jitter(0.0),
    );
    service
        .subscribe_with(
            TOPIC,
            options,
            Arc::new(move |message: Message| {
                let attempt = counter.fetch_add(1, Ordering::SeqCst) + 1;
                let _ = attempts_tx.send((attempt, message.retry, Instant::now()));
                async move {
                    Err::<(), _>(HandlerError::retry(std::io::Error::other(
                        "provider timed out",
                    )))
                }
            }),
        )
        .await?;
    let message = service
        .message(TOPIC, json!({"order": 42}))?
        .with_max_retry(2)?;
    service.publish_message(&message).await?;
    println!(
        "   published {TOPIC} {} with max_retry 2, backoff 100 ms doubling",
        message.payload
    );
    let mut previous: Option<Instant> = None;
    for _ in 0..3 {
        let (attempt, retry, at) = tokio::time::timeout(STEP_DEADLINE, attempts.recv())
            .await
            .context("the handler was not called again")?
            .context("the subscription stopped")?;
        let waited = previous
            .map(|p| format!(" after {} ms of backoff", at.duration_since(p).as_millis()))
            .unwrap_or_default();
        println!(
            "   attempt {attempt} (retry {retry}){waited}: failed with \"provider timed out\""
        );
        previous = Some(at);
    }
    let dead = wait_for(|| async {
        let dead = service.dead_letters(TOPIC, 10).await?;
        Ok((!dead.is_empty()).then_some(dead))
    })
    .await?;
    let letter = &dead[0];
    println!(
        "   dead-lettered after {} attempts by group {}: {}",
        letter.attempts, letter.group, letter.error
    );
    println!(
        "   (`messaging dlq list {TOPIC}` shows it; `messaging dlq replay {TOPIC} --all` sends it back)"
    );
    service.unsubscribe(TOPIC).await?;
    Ok(())
}

/// Step 3: a delayed message is delivered at its time, never earlier.
async fn delayed(service: &MessagingService) -> anyhow::Result<()> {
    const TOPIC: &str = "demo.reminder";
    println!("\n3. a delayed message fires on time");
    let (delivered_tx, mut delivered) = mpsc::unbounded_channel();
    service
        .subscribe_with(
            TOPIC,
            SubscribeOptions::new("reminders").with_block_timeout(Duration::from_millis(100)),
            Arc::new(move |message: Message| {
                let _ = delivered_tx.send((message, Instant::now()));
                async { Ok::<(), HandlerError>(()) }
            }),
        )
        .await?;
    let sent = Instant::now();
    let id = service
        .publish_delayed(TOPIC, json!({"remind": "renew subscription"}), DELAY)
        .await?;
    println!(
        "   published {TOPIC} {id} at {} with --delay {}",
        chrono::Utc::now().format("%H:%M:%S%.3f"),
        humantime::format_duration(DELAY)
    );
    let (message, at) = tokio::time::timeout(STEP_DEADLINE, delivered.recv())
        .await
        .context("the delayed message never arrived")?
        .context("the subscription stopped")?;
    let waited = at.duration_since(sent);
    println!(
        "   delivered {} at {} after {:.2} s",
        message.id,
        chrono::Utc::now().format("%H:%M:%S%.3f"),
        waited.as_secs_f64()
    );
    if waited < DELAY {
        bail!("delivered {} ms early", (DELAY - waited).as_millis());
    }
    service.unsubscribe(TOPIC).await?;
    Ok(())
}

/// Polls `check` until it gives a value, up to [`STEP_DEADLINE`].
async fn wait_for<T, F, Fut>(check: F) -> anyhow::Result<T>
where
    F: Fn() -> Fut,
    Fut: Future<Output = anyhow::Result<Option<T>>>,
{
    let deadline = Instant::now() + STEP_DEADLINE;
    loop {
        if let Some(value) = check().await? {
            return Ok(value);
        }
        if Instant::now() > deadline {
            bail!(
                "gave up after {}",
                humantime::format_duration(STEP_DEADLINE)
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
