//! `messaging demo`: the whole pipeline, step by step, on the embedded default
//! (in-memory backend and stores, an in-process SMTP server), or on real Redis and
//! PostgreSQL with `--redis URL --database URL`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use messaging_core::{HandlerError, MessagingService, RetryPolicy, SubscribeOptions};
use messaging_model::Message;
use serde_json::json;
use tokio::sync::mpsc;

use messaging_model::{NotificationStatus, topics};
use notification::events::LISTENER_GROUP;
use notification::store::InboxQuery;
use smtp_sink::{SinkOptions, SmtpSink};

use crate::cli::DemoArgs;
use crate::config::{self, Config};
use crate::pipeline::Pipeline;

/// How long any step may take before the demo gives up.
const STEP_DEADLINE: Duration = Duration::from_secs(20);
/// The delay of step 3.
const DELAY: Duration = Duration::from_millis(1500);

/// Runs every step; an error when one does not behave as announced.
pub(crate) async fn run(args: DemoArgs) -> anyhow::Result<()> {
    let run_id = uuid::Uuid::now_v7().simple().to_string();
    let (backend, backend_name) = match &args.redis {
        Some(url) => {
            let prefix = format!("messaging-demo-{run_id}");
            let backend = crate::backend::redis(url, &prefix).await?;
            (
                backend,
                format!("Redis {} (key prefix {prefix})", crate::exit::redact(url)),
            )
        }
        None => (
            Arc::new(messaging_core::InMemoryBackend::new()) as Arc<dyn messaging_core::Backend>,
            "the in-memory backend".to_owned(),
        ),
    };
    let mut sink_options = SinkOptions::default();
    if let Some(path) = &args.mail_file {
        sink_options = sink_options.with_mbox(path);
    }
    let sink = SmtpSink::start_with(sink_options)
        .await
        .context("starting the in-process SMTP server")?;
    let mut config = Config::default();
    config.smtp = Some(config::SmtpConfig {
        host: sink.host(),
        port: Some(sink.port()),
        security: notification::channel::SmtpSecurity::DangerousUnencrypted,
        username: None,
        password: None,
        from: "demo@messaging.invalid".into(),
        timeout: Duration::from_secs(10),
        name: None,
        provider: notification::channel::SmtpProvider::Generic,
        fallback: Vec::new(),
        breaker: config::BreakerConfig::default(),
    });
    let schema = format!("messaging_demo_{run_id}");
    if let Some(url) = &args.database {
        config.database.url = Some(url.clone());
        config.database.schema = Some(schema.clone());
    }
    let pipeline = Pipeline::from_config(&config).await?;
    let store_name = match &args.database {
        Some(url) => format!("PostgreSQL {} (schema {schema})", crate::exit::redact(url)),
        None => "in-memory stores".to_owned(),
    };
    println!(
        "messaging demo on {backend_name}, {store_name}, SMTP server on {}",
        sink.addr()
    );

    let service = MessagingService::new(backend);
    let outcome = steps(&service, &pipeline, &sink).await;
    service.shutdown().await;
    if args.redis.is_some() {
        for topic in service.list_topics().await.unwrap_or_default() {
            let _ = service.delete_topic(&topic).await;
        }
    }
    if let Some(pool) = pipeline.pool() {
        // The demo's own schema; the name is ours, made of [a-z0-9_] only.
        let drop = format!("DROP SCHEMA IF EXISTS {schema} CASCADE");
        if let Err(error) = sqlx::raw_sql(sqlx::AssertSqlSafe(drop))
            .execute(&pool)
            .await
        {
            eprintln!("warning: could not drop the demo schema {schema}: {error}");
        }
    }
    pipeline.close().await;
    if let Some(path) = &args.mail_file {
        println!("\nthe emails are in {}", path.display());
    }
    sink.shutdown();
    outcome?;
    println!("\ndone: every step behaved as announced");
    Ok(())
}

async fn steps(
    service: &MessagingService,
    pipeline: &Pipeline,
    sink: &SmtpSink,
) -> anyhow::Result<()> {
    welcome_email(service, pipeline, sink)
        .await
        .context("step 1 (welcome email)")?;
    dead_letter(service)
        .await
        .context("step 2 (retries and dead letter)")?;
    delayed(service).await.context("step 3 (delayed message)")?;
    Ok(())
}

/// Step 1: `user.registered` → welcome email + recorded notification.
async fn welcome_email(
    service: &MessagingService,
    pipeline: &Pipeline,
    sink: &SmtpSink,
) -> anyhow::Result<()> {
    println!(
        "\n1. user.registered is published; the notification listener sends the welcome email"
    );
    let options =
        SubscribeOptions::new(LISTENER_GROUP).with_block_timeout(Duration::from_millis(200));
    pipeline.attach(service, options).await?;
    println!(
        "   listeners subscribed (group {LISTENER_GROUP}): user.registered, wallet.recharged, notification.email|sms|push"
    );
    let user = "demo-ada";
    let payload = json!({"user_id": user, "email": "ada@example.com", "name": "Ada"});
    let id = service
        .publish(topics::USER_REGISTERED, payload.clone())
        .await?;
    println!("   published {} {payload} ({id})", topics::USER_REGISTERED);
    let mail = sink
        .wait_for_messages(1, STEP_DEADLINE)
        .await
        .context("no email reached the SMTP server")?
        .remove(0);
    println!(
        "   the SMTP server received an email for {}: subject {:?}",
        mail.recipients.join(", "),
        mail.subject().unwrap_or_default()
    );
    if let Some(body) = mail.text_body() {
        for line in body.lines().filter(|line| !line.trim().is_empty()) {
            println!("   | {line}");
        }
    }
    let store = pipeline.notifications.notifications().clone();
    let notification = wait_for(|| {
        let store = store.clone();
        async move {
            let page = store.list_for_user(user, &InboxQuery::default()).await?;
            Ok(page
                .items
                .into_iter()
                .find(|n| n.status == NotificationStatus::Sent))
        }
    })
    .await?;
    let unread = store.unread_count(user).await?;
    println!(
        "   notification recorded for {user}: {} {:?}, status {}, {unread} unread",
        notification.kind.as_str(),
        notification.title,
        notification.status.as_str()
    );
    for topic in service
        .subscriptions()
        .await
        .into_iter()
        .map(|(topic, _)| topic)
    {
        service.unsubscribe(&topic).await?;
    }
    Ok(())
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
        .subscribe_with(TOPIC, options, move |message: Message| {
            let attempt = counter.fetch_add(1, Ordering::SeqCst) + 1;
            let _ = attempts_tx.send((attempt, message.retry, Instant::now()));
            async move {
                Err::<(), _>(HandlerError::retry(std::io::Error::other(
                    "provider timed out",
                )))
            }
        })
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
            move |message: Message| {
                let _ = delivered_tx.send((message, Instant::now()));
                async { Ok::<(), HandlerError>(()) }
            },
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
