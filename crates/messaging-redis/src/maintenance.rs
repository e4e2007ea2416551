//! The background task of a backend: promotes due delayed messages and trims
//! streams, at a cost in proportion to the work that is due, not to the number
//! of topics (see `docs/redis.md`, "Who promotes").
//!
//! **Promotion.** Every key prefix has one due index, the sorted set `P:due`:
//! member a topic, score at most the earliest due time of the topic's delayed
//! set. Whoever adds to a delayed set (schedule, retry) then lowers the topic's
//! entry (`ZADD P:due LT`), in a command of its own right after the script, as
//! the index is in another hash slot than the topic's keys. Each process reads
//! the index once per `promote_interval` (`lua/due.lua`: the topics due now and
//! when the next is due, so it may read sooner) and promotes only the topics
//! that are due. After promoting a topic, the promoter sets its entry to what
//! the script saw left (or removes it), then reads the delayed set's head again
//! and lowers the entry if something earlier arrived meanwhile: so an entry a
//! promoter raised past a message scheduled at the same moment is lowered
//! again by that promoter, and one raised earlier is lowered by the scheduler.
//! A stale entry (lower than needed, or for an empty or deleted topic) costs one
//! promotion call that finds nothing and removes it. An entry left unwritten (a
//! process killed between its script and the index command, or a delayed set
//! written before the index existed) is restored by the sweep: every
//! `sweep_interval` one process per prefix (the holder of `P:sweep`) reads the
//! head of every registered topic's delayed set and lowers the index to it.
//!
//! Messages this process schedules or retries, and the next message of a topic
//! it promoted, are also promoted from local timers at their due time, without
//! waiting for the index.
//!
//! **Trimming.** Only topics this process published to, settled on or
//! destroyed a group of since their last trim are trimmed: an entry only
//! becomes trimmable when a publish pushes the stream past what the retention
//! keeps, or when the last group settles it (or a group goes), and whoever does
//! that marks the topic. Idle topics cost nothing.

use std::collections::HashSet;
use std::sync::{Arc, Weak};
use std::time::Duration;

use messaging_core::{BackendError, Retention};
use redis::{RedisError, Value};
use tokio::time::Instant;
use tracing::warn;

use crate::codec;
use crate::due_schedule::Schedule;
use crate::error::backend_error;
use crate::inner::Inner;
use crate::scripts::SCRIPTS;

/// Topics promoted or trimmed concurrently in one round.
const CONCURRENT_TOPICS: usize = 32;
/// Most due topics one read of the index returns; more are read at once.
const DUE_BATCH: usize = 256;
/// Most delayed messages one promotion moves; more are moved by the next one at once.
pub(crate) const PROMOTE_BATCH: i64 = 1_000;
/// Most promotion calls made back to back for one topic before the others get
/// their turn (the rest follows at once, from the local timer).
const PROMOTE_CALLS: usize = 64;
/// Pause before trying again after an error.
const ERROR_PAUSE: Duration = Duration::from_millis(500);
/// Topics one sweep step reads (one pipeline).
const SWEEP_BATCH: usize = 500;

/// One read of the due index.
struct Due {
    /// Topics with a message that may be due now.
    topics: Vec<String>,
    /// How long until the next entry after those is due (by the server's clock).
    until_next: Option<Duration>,
    /// The server's clock, in ms.
    now_ms: i64,
    /// The read returned as many topics as it may: read again at once.
    full: bool,
}

/// Runs until the backend is dropped.
pub(crate) async fn run(backend: Weak<Inner>, schedule: Arc<Schedule>) {
    let Some((promote_interval, trim_interval, sweep_interval, trimming)) =
        backend.upgrade().map(|inner| {
            let config = &inner.config;
            (
                config.promote_interval,
                config.trim_interval,
                config.sweep_interval,
                config.retention != Retention::KeepAll,
            )
        })
    else {
        return;
    };
    let start = Instant::now();
    let mut next_poll = start;
    let mut next_trim = start + trim_interval;
    // The first sweep at start (if no other process swept lately): it indexes
    // what a crashed process, or a version before the index, left unindexed.
    let mut next_sweep = start;
    loop {
        if schedule.is_closed() {
            return;
        }
        let now = Instant::now();
        let timers = schedule.take_due(now);
        let poll = now >= next_poll;
        let trim = trimming && now >= next_trim && schedule.has_dirty();
        let sweep = now >= next_sweep;
        if timers.is_empty() && !poll && !trim && !sweep {
            let mut wake = next_poll.min(next_sweep);
            if let Some(at) = schedule.next_timer() {
                wake = wake.min(at);
            }
            if trimming && schedule.has_dirty() {
                wake = wake.min(next_trim);
            }
            tokio::select! {
                () = tokio::time::sleep_until(wake) => {}
                () = schedule.woken() => {}
            }
            continue;
        }
        let Some(inner) = backend.upgrade() else {
            return;
        };
        if sweep {
            next_sweep = now + sweep_interval;
            match inner.sweep_due_index(true).await {
                Ok(Some(0)) | Ok(None) => {}
                Ok(Some(repaired)) => {
                    warn!(
                        repaired,
                        "the due index lacked (or was late for) some topics' delayed messages: a process stopped between scheduling and indexing, or they predate the index; repaired"
                    );
                }
                Err(error) => {
                    warn!(%error, "sweeping the due index failed; trying again later");
                    next_sweep = now + ERROR_PAUSE.max(promote_interval);
                }
            }
        }
        let mut topics = timers;
        let mut index_topics = HashSet::new();
        let mut server_now = None;
        if poll {
            match inner.read_due_index().await {
                Ok(due) => {
                    next_poll = if due.full {
                        now
                    } else {
                        now + due
                            .until_next
                            .map_or(promote_interval, |until| until.min(promote_interval))
                    };
                    server_now = Some(due.now_ms);
                    for topic in due.topics {
                        if !topics.contains(&topic) {
                            topics.push(topic.clone());
                        }
                        index_topics.insert(topic);
                    }
                }
                Err(error) => {
                    warn!(%error, "reading the due index failed; trying again shortly");
                    next_poll = now + ERROR_PAUSE.min(promote_interval);
                }
            }
        }
        for chunk in topics.chunks(CONCURRENT_TOPICS) {
            let rounds = chunk.iter().map(|topic| {
                let inner = &inner;
                let schedule = &schedule;
                let from_index = index_topics.contains(topic);
                async move {
                    if messaging_model::validate_topic(topic).is_err() {
                        // Written by something else: no topic's keys to touch.
                        warn!(%topic, "the due index holds a name that is no topic; removing it");
                        inner.unindex(topic).await;
                        return;
                    }
                    // promote() sets the next local timer itself.
                    if let Err(error) = inner.promote(topic).await {
                        warn!(%topic, %error, "promoting delayed messages failed; trying again shortly");
                        schedule.due_in(topic, ERROR_PAUSE);
                        if from_index && let Some(now_ms) = server_now {
                            // Out of the next reads' way for a while, so a topic
                            // that keeps failing cannot crowd out the others.
                            inner.postpone_index(topic, now_ms, ERROR_PAUSE).await;
                        }
                    }
                }
            });
            futures::future::join_all(rounds).await;
        }
        if trim {
            next_trim = now + trim_interval;
            let dirty = schedule.take_dirty();
            let mut more = false;
            for chunk in dirty.chunks(CONCURRENT_TOPICS) {
                let rounds = chunk.iter().map(|topic| {
                    let inner = &inner;
                    let schedule = &schedule;
                    async move {
                        match inner.trim(topic).await {
                            Ok(false) => false,
                            Ok(true) => {
                                schedule.touched(topic);
                                true
                            }
                            Err(error) => {
                                warn!(%topic, %error, "trimming failed; trying again later");
                                schedule.touched(topic);
                                false
                            }
                        }
                    }
                });
                more |= futures::future::join_all(rounds).await.contains(&true);
            }
            if more {
                // Topics with more to trim go on at once.
                next_trim = now;
            }
        }
    }
}

impl Inner {
    /// Runs the promotion script once on `topic`, brings its due-index entry
    /// up to date, sets the local timer for its next message, and returns how
    /// many messages it moved.
    pub(crate) async fn promote(&self, topic: &str) -> Result<u64, BackendError> {
        let keys = self.keys.topic(topic);
        let mut total = 0;
        let mut calls = 0;
        // A burst (thousands due at once) is moved by script calls back to
        // back, the index brought up to date once at the end; each call moves
        // at most PROMOTE_BATCH, so Redis is never blocked for long.
        let (moved, next_due, now) = loop {
            let (moved, next_due, now): (i64, i64, i64) = SCRIPTS
                .promote
                .key(&keys.delayed)
                .key(&keys.stream)
                .key(&keys.dead)
                .arg(PROMOTE_BATCH)
                .invoke_async(&mut self.connection())
                .await
                .map_err(backend_error)?;
            total += moved.max(0);
            calls += 1;
            if moved < PROMOTE_BATCH || calls >= PROMOTE_CALLS {
                break (moved, next_due, now);
            }
        };
        if moved >= PROMOTE_BATCH {
            self.schedule.due_in(topic, Duration::ZERO);
        } else if next_due >= 0 {
            self.schedule
                .due_in(topic, millis(next_due.saturating_sub(now)));
        }
        if let Err(error) = self.reindex(topic, next_due).await {
            // The promotion happened; a stale entry is harmless, a missing one
            // is restored by the sweep.
            warn!(%topic, %error, "updating the due index after a promotion failed");
        }
        Ok(u64::try_from(total).unwrap_or(0))
    }

    /// Sets `topic`'s index entry to `next_due` (what the promotion script saw
    /// left, -1 for nothing), then lowers it to the delayed set's head should
    /// something earlier have been scheduled between the script and now. One
    /// command after the other (not pipelined), so the order holds across hash
    /// slots on Redis Cluster too.
    async fn reindex(&self, topic: &str, next_due: i64) -> Result<(), RedisError> {
        let index = self.keys.due_index();
        if next_due < 0 {
            let _: i64 = redis::cmd("ZREM")
                .arg(index)
                .arg(topic)
                .query_async(&mut self.connection())
                .await?;
        } else {
            let _: i64 = redis::cmd("ZADD")
                .arg(index)
                .arg(next_due)
                .arg(topic)
                .query_async(&mut self.connection())
                .await?;
        }
        let head: Value = redis::cmd("ZRANGE")
            .arg(&self.keys.topic(topic).delayed)
            .arg(0)
            .arg(0)
            .arg("WITHSCORES")
            .query_async(&mut self.connection())
            .await?;
        if let Some(earliest) = head_score(head)
            && (next_due < 0 || earliest < next_due)
        {
            self.index_due(topic, earliest).await?;
        }
        Ok(())
    }

    async fn unindex(&self, member: &str) {
        let removed: Result<i64, RedisError> = redis::cmd("ZREM")
            .arg(self.keys.due_index())
            .arg(member)
            .query_async(&mut self.connection())
            .await;
        if let Err(error) = removed {
            warn!(%error, "removing a name from the due index failed");
        }
    }

    /// Raises an existing index entry to `now_ms + pause` (never lowers it).
    async fn postpone_index(&self, topic: &str, now_ms: i64, pause: Duration) {
        let at = now_ms.saturating_add(i64::try_from(pause.as_millis()).unwrap_or(i64::MAX));
        let postponed: Result<i64, RedisError> = redis::cmd("ZADD")
            .arg(self.keys.due_index())
            .arg("XX")
            .arg("GT")
            .arg(at)
            .arg(topic)
            .query_async(&mut self.connection())
            .await;
        if let Err(error) = postponed {
            warn!(%topic, %error, "postponing a failing topic in the due index failed");
        }
    }

    /// One read of the due index (`lua/due.lua`).
    async fn read_due_index(&self) -> Result<Due, BackendError> {
        let reply: Value = SCRIPTS
            .due
            .key(self.keys.due_index())
            .arg(DUE_BATCH)
            .invoke_async(&mut self.connection())
            .await
            .map_err(backend_error)?;
        let mut items = codec::items(reply).into_iter();
        let now_ms = items.next().as_ref().and_then(codec::int).unwrap_or(0);
        let next_due = items.next().as_ref().and_then(codec::int).unwrap_or(-1);
        let topics: Vec<String> = items
            .next()
            .map(codec::items)
            .unwrap_or_default()
            .iter()
            .filter_map(codec::string)
            .collect();
        Ok(Due {
            full: topics.len() >= DUE_BATCH,
            topics,
            until_next: (next_due >= 0).then(|| millis(next_due.saturating_sub(now_ms))),
            now_ms,
        })
    }

    /// Lowers the due index to the head of every registered topic's delayed
    /// set (adding missing entries). With `locked`, only when this process
    /// takes the prefix's sweep lock for one `sweep_interval` (`None` when
    /// another holds it). Returns how many entries it added or lowered.
    pub(crate) async fn sweep_due_index(&self, locked: bool) -> Result<Option<u64>, BackendError> {
        if locked {
            let token = uuid::Uuid::now_v7().simple().to_string();
            let ttl = u64::try_from(self.config.sweep_interval.as_millis()).unwrap_or(u64::MAX);
            let taken: Option<String> = redis::cmd("SET")
                .arg(self.keys.sweep_lock())
                .arg(token)
                .arg("NX")
                .arg("PX")
                .arg(ttl.max(1))
                .query_async(&mut self.connection())
                .await
                .map_err(backend_error)?;
            if taken.is_none() {
                return Ok(None);
            }
        }
        let mut repaired = 0;
        let mut cursor = "0".to_owned();
        loop {
            let (next, page): (String, Vec<String>) = redis::cmd("SSCAN")
                .arg(self.keys.registry())
                .arg(&cursor)
                .arg("COUNT")
                .arg(SWEEP_BATCH)
                .query_async(&mut self.connection())
                .await
                .map_err(backend_error)?;
            let topics: Vec<String> = page
                .into_iter()
                .filter(|topic| messaging_model::validate_topic(topic).is_ok())
                .collect();
            if !topics.is_empty() {
                let ranges: Vec<redis::Cmd> = topics
                    .iter()
                    .map(|topic| {
                        let mut range = redis::cmd("ZRANGE");
                        range
                            .arg(&self.keys.topic(topic).delayed)
                            .arg(0)
                            .arg(0)
                            .arg("WITHSCORES");
                        range
                    })
                    .collect();
                let heads: Vec<Value> = self
                    .connection()
                    .query_each(&ranges)
                    .await
                    .map_err(backend_error)?;
                let mut add = redis::cmd("ZADD");
                add.arg(self.keys.due_index()).arg("LT").arg("CH");
                let mut any = false;
                for (topic, head) in topics.iter().zip(heads) {
                    if let Some(score) = head_score(head) {
                        add.arg(score).arg(topic);
                        any = true;
                    }
                }
                if any {
                    let changed: u64 = add
                        .query_async(&mut self.connection())
                        .await
                        .map_err(backend_error)?;
                    repaired += changed;
                }
            }
            if next == "0" {
                return Ok(Some(repaired));
            }
            cursor = next;
        }
    }
}

/// The score of a `ZRANGE key 0 0 WITHSCORES` reply, if the set has a member.
fn head_score(reply: Value) -> Option<i64> {
    let items = codec::items(reply);
    let score = items.get(1)?;
    // Rounded down: an entry a little early is harmless, a late one is not.
    let score = match score {
        Value::Double(score) => *score,
        other => codec::string(other)?.parse::<f64>().ok()?,
    };
    Some(score.floor() as i64)
}

fn millis(ms: i64) -> Duration {
    Duration::from_millis(u64::try_from(ms).unwrap_or(0))
}
