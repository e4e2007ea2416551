//! Group commit: the writes of concurrent senders (`record`, `begin_attempt`,
//! `record_attempt`) gathered into one transaction, one statement per kind of
//! write and one commit for all of them.
//!
//! A send makes three writes, each of which must be durable before the sender
//! goes on (the row before the provider is called, `sending` before it is
//! handed over, the outcome before the event is acknowledged). Committed one by
//! one, they are bound by the server's commit rate (one WAL flush each). Here a
//! few writer tasks take whatever writes are waiting, up to a batch, and commit
//! them together, in one statement (one round trip): a lone write goes at once (no added wait), and under load the
//! batches grow by themselves while the previous commit is flushed.
//!
//! What each caller sees is what the statement-per-write path gives: its result
//! comes back only after the commit that holds its write, so nothing is
//! reported written that a crash could lose, and a record is never marked
//! `sent` before its send (the outcome is written by the sender, after it). A
//! batch holds each notification id at most once, so every compare-and-set and
//! status rule applies as it does alone. When a batch's statement fails on the
//! data (a value the database refuses), its writes are run again one by one, so
//! only the bad write fails, with its own error.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use chrono::{DateTime, Utc};
use messaging_model::{DeliveryAttempt, Notification};
use notification_store::StoreError;
use sqlx::PgPool;
use tokio::sync::{Mutex, mpsc, oneshot};
use uuid::Uuid;

use crate::error::store_error;
use crate::notifications::{begin_one, floor_micros, into_model, record_attempt_one, record_one};
use crate::rows::{GroupRow, NotificationColumns, NotificationRow, attempts_column};

const GROUP: &str = include_str!("../queries/group_commit.sql");
const EXISTING: &str = include_str!("../queries/notifications_existing.sql");

/// How writes are grouped.
///
/// ```
/// use notification_store_postgres::GroupCommitConfig;
/// let config = GroupCommitConfig::default();
/// assert_eq!((config.max_batch, config.writers), (256, 2));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct GroupCommitConfig {
    /// Most writes in one transaction.
    pub max_batch: usize,
    /// Transactions in flight at once (each holds one pooled connection while
    /// it runs).
    pub writers: usize,
}

impl Default for GroupCommitConfig {
    /// Batches of up to 256 writes, 2 in flight.
    fn default() -> Self {
        Self {
            max_batch: 256,
            writers: 2,
        }
    }
}

impl GroupCommitConfig {
    /// Sets the most writes in one transaction (at least 1).
    pub fn with_max_batch(mut self, max_batch: usize) -> Self {
        self.max_batch = max_batch.max(1);
        self
    }

    /// Sets how many transactions may be in flight at once (at least 1).
    pub fn with_writers(mut self, writers: usize) -> Self {
        self.writers = writers.max(1);
        self
    }
}

/// Counters of group commit since the store was made: `writes / batches` is
/// the mean batch size.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct GroupCommitStats {
    /// Transactions committed (or tried).
    pub batches: u64,
    /// Writes they held.
    pub writes: u64,
    /// Time spent in their statements (sent to answered, the commit
    /// included), summed over the writers: `statement_micros / batches` is
    /// the mean time of one.
    pub statement_micros: u64,
}

/// One write waiting for its batch, with where its result goes.
enum Write {
    Record {
        notification: Box<Notification>,
        reply: oneshot::Sender<Result<(), StoreError>>,
    },
    Begin {
        id: Uuid,
        seen_attempts: u32,
        at: DateTime<Utc>,
        reply: oneshot::Sender<Result<Notification, StoreError>>,
    },
    Attempt {
        attempt: Box<DeliveryAttempt>,
        reply: oneshot::Sender<Result<Notification, StoreError>>,
    },
}

impl Write {
    fn id(&self) -> Uuid {
        match self {
            Self::Record { notification, .. } => notification.id,
            Self::Begin { id, .. } => *id,
            Self::Attempt { attempt, .. } => attempt.notification_id,
        }
    }
}

/// The writers of one store (shared by its clones).
#[derive(Clone)]
pub(crate) struct GroupCommit {
    sender: mpsc::Sender<Write>,
    start: Arc<Start>,
}

/// What the first write needs to start the writer tasks (they are spawned
/// then, inside the caller's runtime, so a store can be built outside one).
struct Start {
    started: AtomicBool,
    batches: AtomicU64,
    writes: AtomicU64,
    statement_micros: AtomicU64,
    pool: PgPool,
    config: GroupCommitConfig,
    receiver: std::sync::Mutex<Option<mpsc::Receiver<Write>>>,
}

impl std::fmt::Debug for GroupCommit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupCommit")
            .field("config", &self.start.config)
            .finish_non_exhaustive()
    }
}

fn stopped() -> StoreError {
    StoreError::Unavailable {
        source: "the store's group-commit writers have stopped".into(),
    }
}

impl GroupCommit {
    pub(crate) fn new(pool: PgPool, config: GroupCommitConfig) -> Self {
        let (sender, receiver) = mpsc::channel(config.max_batch.max(1) * config.writers.max(1) * 4);
        Self {
            sender,
            start: Arc::new(Start {
                started: AtomicBool::new(false),
                batches: AtomicU64::new(0),
                writes: AtomicU64::new(0),
                statement_micros: AtomicU64::new(0),
                pool,
                config,
                receiver: std::sync::Mutex::new(Some(receiver)),
            }),
        }
    }

    fn start_writers(&self) {
        if self.start.started.swap(true, Ordering::AcqRel) {
            return;
        }
        let receiver = self
            .start
            .receiver
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take();
        let Some(receiver) = receiver else { return };
        let receiver = Arc::new(Mutex::new(receiver));
        let start = Arc::clone(&self.start);
        let spawned = std::thread::Builder::new()
            .name("pg-group-commit".into())
            .spawn({
                let receiver = Arc::clone(&receiver);
                move || writers_thread(start, receiver)
            });
        if spawned.is_err() {
            // No thread to be had: the writers share the caller's runtime
            // and pool instead (slower under load, as correct).
            for _ in 0..self.start.config.writers.max(1) {
                let pool = self.start.pool.clone();
                tokio::spawn(writer(Arc::clone(&self.start), pool, Arc::clone(&receiver)));
            }
        }
    }

    async fn submit<T>(
        &self,
        write: impl FnOnce(oneshot::Sender<Result<T, StoreError>>) -> Write,
    ) -> Result<T, StoreError> {
        self.start_writers();
        let (reply, answer) = oneshot::channel();
        self.sender
            .send(write(reply))
            .await
            .map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }

    /// What the writers have done so far.
    pub(crate) fn stats(&self) -> GroupCommitStats {
        GroupCommitStats {
            batches: self.start.batches.load(Ordering::Relaxed),
            writes: self.start.writes.load(Ordering::Relaxed),
            statement_micros: self.start.statement_micros.load(Ordering::Relaxed),
        }
    }

    pub(crate) async fn record(&self, notification: Notification) -> Result<(), StoreError> {
        self.submit(|reply| Write::Record {
            notification: Box::new(notification),
            reply,
        })
        .await
    }

    pub(crate) async fn begin_attempt(
        &self,
        id: Uuid,
        seen_attempts: u32,
        at: DateTime<Utc>,
    ) -> Result<Notification, StoreError> {
        self.submit(|reply| Write::Begin {
            id,
            seen_attempts,
            at,
            reply,
        })
        .await
    }

    pub(crate) async fn record_attempt(
        &self,
        attempt: DeliveryAttempt,
    ) -> Result<Notification, StoreError> {
        self.submit(|reply| Write::Attempt {
            attempt: Box::new(attempt),
            reply,
        })
        .await
    }
}

/// The writers' own thread: a single-threaded runtime and a pool of
/// `writers` connections of their own (the store's connect options, so the
/// same server, schema and timeouts), until every store clone is gone.
///
/// On their own thread, a batch's answer is read as soon as it arrives: on
/// the caller's runtime, each of the response's reads waited behind every
/// handler task queued there (measured: a 50-write statement that the server
/// ran in 3 ms took 20 ms to come back with 256 handlers in flight).
fn writers_thread(start: Arc<Start>, receiver: Arc<Mutex<mpsc::Receiver<Write>>>) {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            // Without a runtime nothing can be written: every write is
            // answered unavailable (its sender is dropped with the receiver).
            tracing::error!(%error, "cannot start the group-commit writers' runtime");
            return;
        }
    };
    runtime.block_on(async move {
        let writers = start.config.writers.max(1);
        let pool = start
            .pool
            .options()
            .clone()
            .max_connections(u32::try_from(writers).unwrap_or(u32::MAX))
            .min_connections(0)
            .connect_lazy_with((*start.pool.connect_options()).clone());
        let tasks: Vec<_> = (0..writers)
            .map(|_| {
                tokio::spawn(writer(
                    Arc::clone(&start),
                    pool.clone(),
                    Arc::clone(&receiver),
                ))
            })
            .collect();
        for task in tasks {
            let _ = task.await;
        }
        pool.close().await;
    });
}

/// Takes a batch (what is waiting, each id once, up to `max_batch`), commits
/// it, answers every write of it; until every store clone is gone.
async fn writer(start: Arc<Start>, pool: PgPool, receiver: Arc<Mutex<mpsc::Receiver<Write>>>) {
    let max_batch = start.config.max_batch.max(1);
    let mut carried: Option<Write> = None;
    loop {
        let batch = match carried.take() {
            // A write carried over from the last batch goes now, with whatever
            // else is waiting if the receiver is free. Never wait for the
            // receiver here: another writer may hold it while it waits for new
            // writes, and the sender of this one waits for its answer.
            Some(first) => gather(first, receiver.try_lock().ok(), max_batch, &mut carried),
            None => {
                let mut guard = receiver.lock().await;
                let Some(first) = guard.recv().await else {
                    return;
                };
                gather(first, Some(guard), max_batch, &mut carried)
            }
        };
        start.batches.fetch_add(1, Ordering::Relaxed);
        start
            .writes
            .fetch_add(batch.len() as u64, Ordering::Relaxed);
        run(&start, &pool, batch).await;
    }
}

/// `first` and what is waiting in the receiver (when this writer holds it), up
/// to `max_batch`, each notification once: the first second write of a
/// notification is carried to the next batch.
fn gather(
    first: Write,
    receiver: Option<tokio::sync::MutexGuard<'_, mpsc::Receiver<Write>>>,
    max_batch: usize,
    carried: &mut Option<Write>,
) -> Vec<Write> {
    let mut ids = HashSet::from([first.id()]);
    let mut batch = vec![first];
    let Some(mut receiver) = receiver else {
        return batch;
    };
    while batch.len() < max_batch {
        match receiver.try_recv() {
            // A second write of one notification waits for the next batch:
            // each statement sees each row once.
            Ok(write) if !ids.insert(write.id()) => {
                *carried = Some(write);
                break;
            }
            Ok(write) => batch.push(write),
            Err(_) => break,
        }
    }
    batch
}

/// Where a write's answer goes.
type Reply<T> = oneshot::Sender<Result<T, StoreError>>;

/// A `begin_attempt` waiting in a batch: id, attempts seen, start.
type BeginWrite = (Uuid, u32, DateTime<Utc>, Reply<Notification>);

/// The writes of a batch, by kind.
#[derive(Default)]
struct Batch {
    records: Vec<(Box<Notification>, Reply<()>)>,
    begins: Vec<BeginWrite>,
    attempts: Vec<(Box<DeliveryAttempt>, Reply<Notification>)>,
}

/// What one batch's transaction gave back.
struct Committed {
    inserted: HashSet<Uuid>,
    begun: Vec<NotificationRow>,
    recorded: Vec<NotificationRow>,
}

async fn run(start: &Start, pool: &PgPool, writes: Vec<Write>) {
    let mut batch = Batch::default();
    for write in writes {
        match write {
            Write::Record {
                notification,
                reply,
            } => batch.records.push((notification, reply)),
            Write::Begin {
                id,
                seen_attempts,
                at,
                reply,
            } => batch.begins.push((id, seen_attempts, at, reply)),
            Write::Attempt { attempt, reply } => batch.attempts.push((attempt, reply)),
        }
    }
    let began = std::time::Instant::now();
    let committed = commit(pool, &batch).await;
    let micros = u64::try_from(began.elapsed().as_micros()).unwrap_or(u64::MAX);
    start.statement_micros.fetch_add(micros, Ordering::Relaxed);
    match committed {
        Ok(committed) => answer(pool, batch, committed).await,
        // The connection or server failed: nobody knows what was committed, as
        // with a single statement; every write gets the (transient) error.
        Err(error) if error.is_transient() => {
            let message = error.to_string();
            let unavailable = || StoreError::Unavailable {
                source: message.clone().into(),
            };
            for (_, reply) in batch.records {
                let _ = reply.send(Err(unavailable()));
            }
            for (.., reply) in batch.begins {
                let _ = reply.send(Err(unavailable()));
            }
            for (_, reply) in batch.attempts {
                let _ = reply.send(Err(unavailable()));
            }
        }
        // A value the database refused: nothing was committed; each write
        // again on its own, so only the bad one fails.
        Err(_) => one_by_one(pool, batch).await,
    }
}

async fn commit(pool: &PgPool, batch: &Batch) -> Result<Committed, StoreError> {
    // Records.
    let notifications: Vec<Notification> =
        batch.records.iter().map(|(n, _)| (**n).clone()).collect();
    let c = NotificationColumns::new(&notifications).floored_to_micros();
    // Begins.
    let begin_ids: Vec<Uuid> = batch.begins.iter().map(|(id, ..)| *id).collect();
    let seen: Vec<i32> = batch
        .begins
        .iter()
        .map(|(_, seen, ..)| attempts_column(*seen))
        .collect();
    let at: Vec<DateTime<Utc>> = batch
        .begins
        .iter()
        .map(|(_, _, at, _)| floor_micros(*at))
        .collect();
    // Attempts.
    let a: Vec<&DeliveryAttempt> = batch.attempts.iter().map(|(a, _)| &**a).collect();
    let attempt_ids: Vec<Uuid> = a.iter().map(|a| a.notification_id).collect();
    let numbers: Vec<i32> = a.iter().map(|a| attempts_column(a.number)).collect();
    let kinds: Vec<&str> = a.iter().map(|a| a.kind.as_str()).collect();
    let providers: Vec<&str> = a.iter().map(|a| a.provider.as_str()).collect();
    let outcomes: Vec<&str> = a.iter().map(|a| a.outcome.as_str()).collect();
    let errors: Vec<Option<&str>> = a.iter().map(|a| a.error.as_deref()).collect();
    let started: Vec<DateTime<Utc>> = a.iter().map(|a| floor_micros(a.started_at)).collect();
    let durations: Vec<Option<i64>> = a
        .iter()
        .map(|a| {
            a.duration_ms
                .map(|ms| i64::try_from(ms).unwrap_or(i64::MAX))
        })
        .collect();
    let finished: Vec<DateTime<Utc>> = a.iter().map(|a| floor_micros(a.finished_at())).collect();
    let provider_message_ids: Vec<Option<&str>> =
        a.iter().map(|a| a.provider_message_id.as_deref()).collect();

    // One statement: one round trip, atomic, one commit.
    let rows = sqlx::query_as::<_, GroupRow>(GROUP)
        .bind(&c.ids)
        .bind(&c.user_ids)
        .bind(&c.kinds)
        .bind(&c.titles)
        .bind(&c.contents)
        .bind(&c.statuses)
        .bind(&c.is_reads)
        .bind(&c.metadata)
        .bind(&c.errors)
        .bind(&c.idempotency_keys)
        .bind(&c.created_ats)
        .bind(&c.read_ats)
        .bind(&c.sent_ats)
        .bind(&c.attempts)
        .bind(&c.last_attempt_ats)
        .bind(&begin_ids)
        .bind(&seen)
        .bind(&at)
        .bind(&attempt_ids)
        .bind(&numbers)
        .bind(&kinds)
        .bind(&providers)
        .bind(&outcomes)
        .bind(&errors)
        .bind(&started)
        .bind(&durations)
        .bind(&finished)
        .bind(&provider_message_ids)
        .fetch_all(pool)
        .await
        .map_err(store_error)?;
    let mut committed = Committed {
        inserted: HashSet::new(),
        begun: Vec::new(),
        recorded: Vec::new(),
    };
    for row in rows {
        match row.write_kind.as_str() {
            "record" => {
                committed.inserted.insert(row.id);
            }
            "begin" => committed.begun.extend(row.into_notification_row()),
            _ => committed.recorded.extend(row.into_notification_row()),
        }
    }
    Ok(committed)
}

/// Answers each write of a committed batch.
async fn answer(pool: &PgPool, batch: Batch, committed: Committed) {
    for (notification, reply) in batch.records {
        let outcome = if committed.inserted.contains(&notification.id) {
            Ok(())
        } else {
            // Skipped for a taken id or key: on its own statement again, which
            // names the constraint in its `Conflict` (or, if the other row went
            // meanwhile, records it).
            record_one(pool, &notification).await
        };
        let _ = reply.send(outcome);
    }

    let mut begun = rows_by_id(committed.begun);
    let missing: Vec<Uuid> = batch
        .begins
        .iter()
        .map(|(id, ..)| *id)
        .filter(|id| !begun.contains_key(id))
        .collect();
    let existing = if missing.is_empty() {
        Ok(HashSet::new())
    } else {
        sqlx::query_scalar::<_, Uuid>(EXISTING)
            .bind(&missing)
            .fetch_all(pool)
            .await
            .map(|ids| ids.into_iter().collect::<HashSet<_>>())
            .map_err(|error| error.to_string())
    };
    for (id, seen, _, reply) in batch.begins {
        let outcome = match begun.remove(&id) {
            Some(row) => into_model(row),
            None => match &existing {
                Ok(existing) if existing.contains(&id) => Err(StoreError::Conflict {
                    what: format!("notification {id} is sent or moved past attempt {seen}"),
                }),
                Ok(_) => Err(StoreError::notification_not_found(id)),
                Err(message) => Err(StoreError::Unavailable {
                    source: message.clone().into(),
                }),
            },
        };
        let _ = reply.send(outcome);
    }

    let mut recorded = rows_by_id(committed.recorded);
    for (attempt, reply) in batch.attempts {
        let outcome = match recorded.remove(&attempt.notification_id) {
            Some(row) => into_model(row),
            None => Err(StoreError::notification_not_found(attempt.notification_id)),
        };
        let _ = reply.send(outcome);
    }
}

fn rows_by_id(rows: Vec<NotificationRow>) -> HashMap<Uuid, NotificationRow> {
    rows.into_iter().map(|row| (row.id(), row)).collect()
}

/// Every write of a batch on its own statement (after the batch's statement
/// failed on its data).
async fn one_by_one(pool: &PgPool, batch: Batch) {
    for (notification, reply) in batch.records {
        let _ = reply.send(record_one(pool, &notification).await);
    }
    for (id, seen, at, reply) in batch.begins {
        let _ = reply.send(begin_one(pool, id, seen, at).await);
    }
    for (attempt, reply) in batch.attempts {
        let _ = reply.send(record_attempt_one(pool, &attempt).await);
    }
}
