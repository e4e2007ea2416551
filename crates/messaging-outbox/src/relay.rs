//! [`Relay`]: moves committed outbox rows into the messaging backend.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use messaging_core::{BackendError, MessagingError, MessagingService};
use messaging_model::{MAX_BATCH_BYTES, MAX_BATCH_MESSAGES, Message};
use sqlx::postgres::{PgListener, PgPool};
use sqlx::{AssertSqlSafe, Connection, PgConnection};
use tokio::time::Instant;
use uuid::Uuid;

use crate::error::database_error;
use crate::message::check_metadata_keys;
use crate::{Outbox, OutboxError};

/// How a [`Relay`] works.
///
/// ```
/// use std::time::Duration;
/// use messaging_outbox::RelayConfig;
///
/// let config = RelayConfig::default()
///     .with_batch_size(500)
///     .with_poll_interval(Duration::from_millis(500))
///     .with_retention(Duration::from_secs(3600));
/// assert_eq!(config.batch_size, 500);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RelayConfig {
    /// Most rows one round publishes (1 to 10,000) [default: 100].
    pub batch_size: usize,
    /// How long an idle relay waits before looking again when no `NOTIFY`
    /// woke it: the fallback, and the latency when notifications are off or
    /// lost [default: 1 s].
    pub poll_interval: Duration,
    /// Whether to `LISTEN` for the writers' notifications [default: true].
    pub listen: bool,
    /// How long published rows are kept (for inspection, and for the attempt
    /// counts); `Duration::ZERO` deletes a row as soon as it is published
    /// [default: 24 h]. Failed rows are never deleted by the relay.
    pub retention: Duration,
    /// How often a relay deletes published rows older than `retention`
    /// [default: 60 s].
    pub sweep_interval: Duration,
    /// How long to wait after a failed round (database or backend down)
    /// [default: 1 s].
    pub error_backoff: Duration,
}

impl Default for RelayConfig {
    fn default() -> Self {
        Self {
            batch_size: 100,
            poll_interval: Duration::from_secs(1),
            listen: true,
            retention: Duration::from_secs(24 * 3600),
            sweep_interval: Duration::from_secs(60),
            error_backoff: Duration::from_secs(1),
        }
    }
}

impl RelayConfig {
    /// Sets the most rows per round.
    pub fn with_batch_size(mut self, batch_size: usize) -> Self {
        self.batch_size = batch_size;
        self
    }

    /// Sets the fallback poll interval.
    pub fn with_poll_interval(mut self, interval: Duration) -> Self {
        self.poll_interval = interval;
        self
    }

    /// Turns `LISTEN` on or off.
    pub fn with_listen(mut self, listen: bool) -> Self {
        self.listen = listen;
        self
    }

    /// Sets how long published rows are kept (`Duration::ZERO`: not at all).
    pub fn with_retention(mut self, retention: Duration) -> Self {
        self.retention = retention;
        self
    }

    /// Sets how often old published rows are deleted.
    pub fn with_sweep_interval(mut self, interval: Duration) -> Self {
        self.sweep_interval = interval;
        self
    }

    /// Sets the wait after a failed round.
    pub fn with_error_backoff(mut self, backoff: Duration) -> Self {
        self.error_backoff = backoff;
        self
    }

    fn check(&self) -> Result<(), OutboxError> {
        if !(1..=MAX_BATCH_MESSAGES).contains(&self.batch_size) {
            return Err(OutboxError::InvalidConfig("batch_size must be 1 to 10000"));
        }
        if self.poll_interval.is_zero() {
            return Err(OutboxError::InvalidConfig("poll_interval must be positive"));
        }
        if self.sweep_interval.is_zero() {
            return Err(OutboxError::InvalidConfig(
                "sweep_interval must be positive",
            ));
        }
        if self.error_backoff.is_zero() {
            return Err(OutboxError::InvalidConfig("error_backoff must be positive"));
        }
        if chrono::Duration::from_std(self.retention).is_err() {
            return Err(OutboxError::InvalidConfig("retention is out of range"));
        }
        Ok(())
    }
}

/// What one [`Relay::relay_once`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Round {
    /// Rows published (and marked or deleted).
    pub published: usize,
    /// Rows the backend can never take, marked `failed`.
    pub failed: usize,
}

impl Round {
    /// True when the round found nothing it could take.
    pub fn is_idle(&self) -> bool {
        self.published == 0 && self.failed == 0
    }
}

/// What a relay did until it stopped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RelayStats {
    /// Rounds that published or failed at least one row.
    pub rounds: u64,
    /// Rows published.
    pub published: u64,
    /// Rows marked `failed`.
    pub failed: u64,
    /// Rounds that ended in an error (retried after `error_backoff`).
    pub errors: u64,
    /// Published rows deleted by retention.
    pub swept: u64,
}

/// Moves committed outbox rows into a [`MessagingService`] (Redis, in memory),
/// at least once, in order per ordering key, and marks them published.
///
/// How a round works, and why it is safe to run several relays at once:
///
/// 1. On its own dedicated connection, the relay looks at the oldest pending
///    rows and takes a session-level advisory lock (`pg_try_advisory_lock`)
///    per key it can get (a row without a key is its own key), keeping about a
///    batch's worth of rows. Keys another relay holds are skipped, not waited for.
/// 2. It bumps `attempts` of those keys' oldest pending rows and reads them,
///    in one committed statement, *after* taking the locks, so it sees every
///    row the previous holder marked.
/// 3. It publishes them in `seq` order (delayed ones to the backend's delay
///    queue), with the id fixed at write time.
/// 4. It marks them `published` (or deletes them, with zero retention), and
///    only then releases its locks.
///
/// A relay killed between 3 and 4 loses its connection and with it its locks;
/// the next relay publishes those rows again with the same ids (their
/// `attempts` is then above 1). Otherwise no row is published twice.
///
/// ```no_run
/// use std::sync::Arc;
/// use messaging_core::MessagingService;
/// use messaging_outbox::{Outbox, Relay, RelayConfig};
///
/// # async fn run(pool: sqlx::PgPool) -> Result<(), Box<dyn std::error::Error>> {
/// let outbox = Outbox::in_schema("app")?;
/// messaging_outbox::migrate(&pool, &outbox).await?;
/// let service = Arc::new(MessagingService::in_memory());
/// let relay = Relay::new(outbox, pool, service, RelayConfig::default())?.spawn();
/// // … the application runs …
/// let stats = relay.stop().await;
/// println!("relayed {} messages", stats.published);
/// # Ok(())
/// # }
/// ```
pub struct Relay {
    outbox: Outbox,
    pool: PgPool,
    service: Arc<MessagingService>,
    config: RelayConfig,
    sql: RelaySql,
    /// The connection holding this relay's key locks; dropped (which releases
    /// them) after any error.
    conn: Option<PgConnection>,
    listener: Option<PgListener>,
    stats: RelayStats,
}

impl std::fmt::Debug for Relay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Relay")
            .field("table", &self.outbox.table())
            .field("config", &self.config)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

struct RelaySql {
    claim: String,
    release: String,
    take: String,
    mark_published: String,
    mark_failed: String,
    sweep: String,
}

impl RelaySql {
    fn new(outbox: &Outbox, delete_on_publish: bool) -> Self {
        let table = outbox.table();
        let relays = format!(
            "hashtext('messaging-outbox:relays:' || {})",
            outbox.schema_expr()
        );
        Self {
            claim: format!(
                "WITH oldest AS MATERIALIZED ( \
                     SELECT lock_key, seq FROM {table} WHERE state = 'pending' ORDER BY seq LIMIT $1 \
                 ), keys AS MATERIALIZED ( \
                     SELECT lock_key, min(seq) AS first_seq, count(*) AS n FROM oldest GROUP BY lock_key \
                 ) \
                 SELECT lock_key, n FROM keys \
                 WHERE pg_try_advisory_lock({relays}, hashtext(lock_key)) \
                 ORDER BY first_seq"
            ),
            release: format!(
                "SELECT count(pg_advisory_unlock({relays}, hashtext(key))) FROM unnest($1::text[]) AS key"
            ),
            take: format!(
                "UPDATE {table} SET attempts = attempts + 1, last_attempt_at = now() \
                 WHERE seq IN (SELECT seq FROM {table} WHERE state = 'pending' AND lock_key = ANY($1) \
                               ORDER BY seq LIMIT $2) \
                 RETURNING seq, id, topic, payload, metadata, max_retry, deliver_at, created_at"
            ),
            mark_published: if delete_on_publish {
                format!("DELETE FROM {table} WHERE seq = ANY($1)")
            } else {
                format!(
                    "UPDATE {table} SET state = 'published', published_at = now() WHERE seq = ANY($1)"
                )
            },
            mark_failed: format!("UPDATE {table} SET state = 'failed', error = $2 WHERE seq = $1"),
            sweep: format!(
                "DELETE FROM {table} WHERE seq IN ( \
                     SELECT seq FROM {table} WHERE state = 'published' \
                     AND published_at < now() - make_interval(secs => $1) LIMIT $2)"
            ),
        }
    }
}

/// A row a round took.
#[derive(sqlx::FromRow)]
struct TakenRow {
    seq: i64,
    id: Uuid,
    topic: String,
    payload: serde_json::Value,
    metadata: serde_json::Value,
    max_retry: i32,
    deliver_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
}

/// A taken row ready to publish.
struct Ready {
    seq: i64,
    message: Message,
    size: usize,
    deliver_at: Option<DateTime<Utc>>,
}

/// Rows deleted per sweep statement.
const SWEEP_CHUNK: i64 = 10_000;

impl Relay {
    /// A relay of `outbox`, reading through `pool` (which must reach the
    /// outbox's table: the same `search_path` when it has no schema) and
    /// publishing through `service`. Nothing is opened until it runs.
    pub fn new(
        outbox: Outbox,
        pool: PgPool,
        service: Arc<MessagingService>,
        config: RelayConfig,
    ) -> Result<Self, OutboxError> {
        config.check()?;
        let sql = RelaySql::new(&outbox, config.retention.is_zero());
        Ok(Self {
            outbox,
            pool,
            service,
            config,
            sql,
            conn: None,
            listener: None,
            stats: RelayStats::default(),
        })
    }

    /// What it did so far.
    pub fn stats(&self) -> RelayStats {
        self.stats
    }

    /// One round: claims keys, publishes up to `batch_size` of their oldest
    /// pending rows, marks them, releases the keys. Returns what it published;
    /// an idle round when every pending row's key is held by another relay (or
    /// there is none).
    ///
    /// On an error the rows this round published but could not mark stay
    /// pending and are published again later (same ids).
    pub async fn relay_once(&mut self) -> Result<Round, OutboxError> {
        let outcome = self.round().await;
        match &outcome {
            Ok(round) if !round.is_idle() => {
                self.stats.rounds += 1;
                self.stats.published += round.published as u64;
                self.stats.failed += round.failed as u64;
            }
            Ok(_) => {}
            Err(_) => {
                self.stats.errors += 1;
                // Closing the session releases every lock it holds.
                if let Some(conn) = self.conn.take() {
                    let _ = conn.close().await;
                }
            }
        }
        outcome
    }

    async fn round(&mut self) -> Result<Round, OutboxError> {
        if self.conn.is_none() {
            let options = self.pool.connect_options();
            let conn = PgConnection::connect_with(&options)
                .await
                .map_err(database_error)?;
            self.conn = Some(conn);
        }
        let Some(conn) = self.conn.as_mut() else {
            return Ok(Round::default());
        };
        let batch = self.config.batch_size;
        let window = i64::try_from(batch.saturating_mul(4)).unwrap_or(i64::MAX);
        let claimed: Vec<(String, i64)> = sqlx::query_as(AssertSqlSafe(self.sql.claim.as_str()))
            .bind(window)
            .fetch_all(&mut *conn)
            .await
            .map_err(database_error)?;
        if claimed.is_empty() {
            return Ok(Round::default());
        }
        // Keep about a batch's worth of keys; let the rest go at once, so other
        // relays can take them this round.
        let mut keep = Vec::new();
        let mut release = Vec::new();
        let mut rows = 0i64;
        for (key, n) in claimed {
            if rows < batch as i64 {
                rows += n;
                keep.push(key);
            } else {
                release.push(key);
            }
        }
        if !release.is_empty() {
            sqlx::query(AssertSqlSafe(self.sql.release.as_str()))
                .bind(&release)
                .execute(&mut *conn)
                .await
                .map_err(database_error)?;
        }
        let outcome = self.take_and_publish(&keep).await;
        // Released only after the marks are committed: a relay taking a key
        // next reads them.
        let conn = self.conn.as_mut().ok_or(OutboxError::Database {
            source: sqlx::Error::PoolClosed,
        })?;
        sqlx::query("SELECT pg_advisory_unlock_all()")
            .execute(&mut *conn)
            .await
            .map_err(database_error)?;
        outcome
    }

    async fn take_and_publish(&mut self, keys: &[String]) -> Result<Round, OutboxError> {
        let Some(conn) = self.conn.as_mut() else {
            return Ok(Round::default());
        };
        let limit = i64::try_from(self.config.batch_size).unwrap_or(i64::MAX);
        let mut taken: Vec<TakenRow> = sqlx::query_as(AssertSqlSafe(self.sql.take.as_str()))
            .bind(keys)
            .bind(limit)
            .fetch_all(&mut *conn)
            .await
            .map_err(database_error)?;
        taken.sort_unstable_by_key(|row| row.seq);

        let mut failed: Vec<(i64, String)> = Vec::new();
        let mut ready = Vec::with_capacity(taken.len());
        for row in taken {
            let seq = row.seq;
            match ready_row(row) {
                Ok(row) => ready.push(row),
                Err(reason) => failed.push((seq, reason)),
            }
        }
        let (published, error) = self.publish(ready, &mut failed).await;

        let Some(conn) = self.conn.as_mut() else {
            return Ok(Round::default());
        };
        if !published.is_empty() {
            sqlx::query(AssertSqlSafe(self.sql.mark_published.as_str()))
                .bind(&published)
                .execute(&mut *conn)
                .await
                .map_err(database_error)?;
            metrics::counter!("messaging_outbox_relayed_total").increment(published.len() as u64);
        }
        for (seq, reason) in &failed {
            tracing::error!(seq, %reason, table = self.outbox.table(), "outbox row can never be published: marked failed");
            sqlx::query(AssertSqlSafe(self.sql.mark_failed.as_str()))
                .bind(seq)
                .bind(reason)
                .execute(&mut *conn)
                .await
                .map_err(database_error)?;
        }
        if !failed.is_empty() {
            metrics::counter!("messaging_outbox_failed_total").increment(failed.len() as u64);
        }
        match error {
            Some(error) => Err(error),
            None => Ok(Round {
                published: published.len(),
                failed: failed.len(),
            }),
        }
    }

    /// Publishes `ready` in order: runs of immediate messages in one backend
    /// call each, delayed ones to the delay queue. Returns the seqs published
    /// and the error that stopped it, if any; rows refused for their content go
    /// to `failed`.
    async fn publish(
        &self,
        ready: Vec<Ready>,
        failed: &mut Vec<(i64, String)>,
    ) -> (Vec<i64>, Option<OutboxError>) {
        let mut published = Vec::with_capacity(ready.len());
        let mut run: Vec<Ready> = Vec::new();
        let mut run_bytes = 0usize;
        let now = Utc::now();
        for row in ready {
            let delayed = row.deliver_at.filter(|at| *at > now);
            let full = run.len() == MAX_BATCH_MESSAGES || run_bytes + row.size > MAX_BATCH_BYTES;
            if (delayed.is_some() || full) && !run.is_empty() {
                let batch = std::mem::take(&mut run);
                run_bytes = 0;
                if let Err(error) = self.publish_run(batch, &mut published, failed).await {
                    return (published, Some(error));
                }
            }
            match delayed {
                Some(at) => match self.service.publish_message_at(&row.message, at).await {
                    Ok(_) => published.push(row.seq),
                    Err(error) if refused_for_content(&error) => {
                        failed.push((row.seq, error.to_string()))
                    }
                    Err(error) => return (published, Some(error.into())),
                },
                None => {
                    run_bytes += row.size;
                    run.push(row);
                }
            }
        }
        if !run.is_empty()
            && let Err(error) = self.publish_run(run, &mut published, failed).await
        {
            return (published, Some(error));
        }
        (published, None)
    }

    async fn publish_run(
        &self,
        run: Vec<Ready>,
        published: &mut Vec<i64>,
        failed: &mut Vec<(i64, String)>,
    ) -> Result<(), OutboxError> {
        let messages: Vec<Message> = run.iter().map(|row| row.message.clone()).collect();
        match self.service.publish_messages(&messages).await {
            Ok(_) => {
                published.extend(run.iter().map(|row| row.seq));
                Ok(())
            }
            Err(MessagingError::Backend(BackendError::QueueFull {
                topic,
                cap,
                written,
            })) => {
                published.extend(run.iter().take(written).map(|row| row.seq));
                Err(MessagingError::Backend(BackendError::QueueFull {
                    topic,
                    cap,
                    written,
                })
                .into())
            }
            Err(error) if refused_for_content(&error) => {
                // One of them is refused: find it, publish the others one by one.
                for row in run {
                    match self.service.publish_message(&row.message).await {
                        Ok(_) => published.push(row.seq),
                        Err(error) if refused_for_content(&error) => {
                            failed.push((row.seq, error.to_string()))
                        }
                        Err(error) => return Err(error.into()),
                    }
                }
                Ok(())
            }
            Err(error) => Err(error.into()),
        }
    }

    /// Deletes published rows older than `retention` (nothing with zero
    /// retention, where they are deleted on publish); returns how many.
    pub async fn sweep(&mut self) -> Result<u64, OutboxError> {
        if self.config.retention.is_zero() {
            return Ok(0);
        }
        let mut swept = 0u64;
        loop {
            let deleted = sqlx::query(AssertSqlSafe(self.sql.sweep.as_str()))
                .bind(self.config.retention.as_secs_f64())
                .bind(SWEEP_CHUNK)
                .execute(&self.pool)
                .await
                .map_err(database_error)?
                .rows_affected();
            swept += deleted;
            if deleted < SWEEP_CHUNK as u64 {
                break;
            }
        }
        self.stats.swept += swept;
        Ok(swept)
    }

    /// Relays until `shutdown` resolves: a round as long as there is work, then
    /// waits for a `NOTIFY` or the poll interval; after an error waits
    /// `error_backoff` and tries again (errors are logged, never fatal). A round
    /// in progress is finished before it returns. Deletes old published rows
    /// every `sweep_interval`.
    pub async fn run(mut self, shutdown: impl Future<Output = ()>) -> RelayStats {
        tokio::pin!(shutdown);
        let mut next_sweep = Instant::now() + self.config.sweep_interval;
        tracing::info!(
            table = self.outbox.table(),
            channel = self.outbox.channel(),
            "outbox relay started"
        );
        loop {
            if self.config.listen && self.listener.is_none() {
                self.listener = self.listen().await;
            }
            // Anything committed from here on notifies again.
            if let Some(listener) = self.listener.as_mut() {
                while listener.next_buffered().is_some() {}
            }
            let wait = match self.relay_once().await {
                Ok(round) if !round.is_idle() => None,
                Ok(_) => Some(self.config.poll_interval),
                Err(error) => {
                    tracing::warn!(%error, table = self.outbox.table(), "outbox relay round failed; retrying");
                    Some(self.config.error_backoff)
                }
            };
            if Instant::now() >= next_sweep {
                next_sweep = Instant::now() + self.config.sweep_interval;
                if let Err(error) = self.sweep().await {
                    tracing::warn!(%error, "outbox retention sweep failed");
                }
            }
            match wait {
                None => {
                    tokio::select! {
                        biased;
                        () = &mut shutdown => break,
                        () = std::future::ready(()) => {}
                    }
                }
                Some(wait) => {
                    let notified = async {
                        match self.listener.as_mut() {
                            Some(listener) => listener.recv().await.is_ok(),
                            None => std::future::pending().await,
                        }
                    };
                    tokio::select! {
                        biased;
                        () = &mut shutdown => break,
                        ok = notified => if !ok { self.listener = None },
                        () = tokio::time::sleep(wait) => {}
                    }
                }
            }
        }
        if let Some(conn) = self.conn.take() {
            let _ = conn.close().await;
        }
        tracing::info!(stats = ?self.stats, "outbox relay stopped");
        self.stats
    }

    async fn listen(&self) -> Option<PgListener> {
        let outcome = async {
            let mut listener = PgListener::connect_with(&self.pool).await?;
            listener.listen(self.outbox.channel()).await?;
            Ok::<_, sqlx::Error>(listener)
        }
        .await;
        match outcome {
            Ok(listener) => Some(listener),
            Err(error) => {
                tracing::warn!(%error, "cannot LISTEN for outbox notifications; polling");
                None
            }
        }
    }

    /// Runs the relay on its own task until [`RelayHandle::stop`].
    pub fn spawn(self) -> RelayHandle {
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(self.run(async {
            let _ = stopped.await;
        }));
        RelayHandle {
            stop: Some(stop),
            task,
        }
    }
}

/// A relay running on its own task ([`Relay::spawn`]).
#[derive(Debug)]
pub struct RelayHandle {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<RelayStats>,
}

impl RelayHandle {
    /// Stops the relay after its current round and returns what it did.
    pub async fn stop(mut self) -> RelayStats {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match (&mut self.task).await {
            Ok(stats) => stats,
            Err(error) if error.is_panic() => std::panic::resume_unwind(error.into_panic()),
            Err(_) => RelayStats::default(),
        }
    }
}

/// A refusal that repeating the same publish cannot change.
fn refused_for_content(error: &MessagingError) -> bool {
    // One variant for invalid input: the service checks a message once, and
    // the backend does not check it again.
    matches!(error, MessagingError::Validation(_))
}

/// The message of a taken row, checked as the service will check it; the
/// reason when it can never be published (a row edited by hand).
fn ready_row(row: TakenRow) -> Result<Ready, String> {
    let (mut message, size) =
        Message::new_sized(row.topic, row.payload).map_err(|error| error.to_string())?;
    message.id = row.id;
    message.metadata = serde_json::from_value(row.metadata)
        .map_err(|error| format!("metadata is not an object of strings: {error}"))?;
    let max_retry = u32::try_from(row.max_retry)
        .map_err(|_| format!("max_retry {} is negative", row.max_retry))?;
    let mut message = message
        .with_max_retry(max_retry)
        .map_err(|error| error.to_string())?;
    message.created_at = row.created_at;
    message.updated_at = row.created_at;
    check_metadata_keys(&message).map_err(|error| error.to_string())?;
    Ok(Ready {
        seq: row.seq,
        message,
        size,
        deliver_at: row.deliver_at,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_out_of_range_are_errors() {
        for config in [
            RelayConfig::default().with_batch_size(0),
            RelayConfig::default().with_batch_size(10_001),
            RelayConfig::default().with_poll_interval(Duration::ZERO),
            RelayConfig::default().with_sweep_interval(Duration::ZERO),
            RelayConfig::default().with_error_backoff(Duration::ZERO),
            RelayConfig::default().with_retention(Duration::MAX),
        ] {
            assert!(
                matches!(config.check(), Err(OutboxError::InvalidConfig(_))),
                "{config:?}"
            );
        }
        RelayConfig::default().check().unwrap();
    }

    #[test]
    fn a_hand_edited_row_is_refused_with_a_reason() {
        let row = |metadata: serde_json::Value, max_retry: i32| TakenRow {
            seq: 1,
            id: Uuid::now_v7(),
            topic: "a.b".into(),
            payload: serde_json::json!({}),
            metadata,
            max_retry,
            deliver_at: None,
            created_at: Utc::now(),
        };
        assert!(ready_row(row(serde_json::json!({"k": "v"}), 3)).is_ok());
        assert!(ready_row(row(serde_json::json!({"k": 1}), 3)).is_err());
        assert!(ready_row(row(serde_json::json!({}), -1)).is_err());
        assert!(ready_row(row(serde_json::json!({"x-target-group": "g"}), 3)).is_err());
    }
}
