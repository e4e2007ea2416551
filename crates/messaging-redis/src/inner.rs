//! The state one backend's clones share (connections, key layout, local
//! schedule, ack queue) and the Redis operations built on it that the hot
//! path, administration and the background tasks all use. It depends on the
//! leaf modules only (keys, codec, scripts, pool, ack_queue, due_schedule), so
//! the modules above it point one way: backend, hot_path, admin, acks and
//! maintenance → inner.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use chrono::{DateTime, Utc};
use messaging_core::{BackendError, Receipt, Retention, Settlement, StartFrom};
use messaging_model::Message;
use redis::{Cmd, ErrorKind, RedisError, Script, ServerErrorKind, Value};
use tracing::warn;

use crate::RedisBackendConfig;
use crate::ack_queue::AckSender;
use crate::codec;
use crate::connection::Connection;
use crate::due_schedule::Schedule;
use crate::error::{NotReplicated, backend_error, is_busy_group, is_redirection};
use crate::keys::Keys;
use crate::pool::BlockingPool;
use crate::scripts::SCRIPTS;

/// Most entries one trim removes, which bounds how long the script runs.
const TRIM_BATCH: i64 = 1_000;

/// The first and the longest wait before a publish that met a cluster
/// redirection runs again.
const REDIRECTION_BACKOFF: std::time::Duration = std::time::Duration::from_millis(10);
const REDIRECTION_BACKOFF_MAX: std::time::Duration = std::time::Duration::from_millis(200);

/// What one backend's clones share.
pub(crate) struct Inner {
    pub(crate) config: RedisBackendConfig,
    pub(crate) keys: Keys,
    connection: Connection,
    pub(crate) blocking: BlockingPool,
    pub(crate) schedule: Arc<Schedule>,
    pub(crate) acks: AckSender,
    /// Where the next XAUTOCLAIM of each (topic, group) starts.
    reclaim_cursors: Mutex<HashMap<(String, String), String>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.schedule.close();
    }
}

impl Inner {
    /// The state of a backend just connected.
    pub(crate) fn new(
        config: RedisBackendConfig,
        connection: Connection,
        blocking: BlockingPool,
        schedule: Arc<Schedule>,
        acks: AckSender,
    ) -> Self {
        Self {
            acks,
            keys: Keys::new(&config.key_prefix),
            blocking,
            config,
            connection,
            schedule,
            reclaim_cursors: Mutex::new(HashMap::new()),
        }
    }

    /// Lowers `topic`'s index entry to `score` (adds it when missing): what
    /// every writer of a delayed set does right after its script.
    pub(crate) async fn index_due(&self, topic: &str, score: i64) -> Result<(), RedisError> {
        let _: i64 = redis::cmd("ZADD")
            .arg(self.keys.due_index())
            .arg("LT")
            .arg(score)
            .arg(topic)
            .query_async(&mut self.connection())
            .await?;
        Ok(())
    }

    /// Marks `topic` for the next trimming round, when trimming is on.
    pub(crate) fn touched(&self, topic: &str) {
        if self.config.retention != Retention::KeepAll {
            self.schedule.touched(topic);
        }
    }
    pub(crate) fn connection(&self) -> Connection {
        self.connection.clone()
    }

    pub(crate) fn cursors(&self) -> MutexGuard<'_, HashMap<(String, String), String>> {
        self.reclaim_cursors
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Trims a topic's stream; true when there is more to trim right away.
    pub(crate) async fn trim(&self, topic: &str) -> Result<bool, BackendError> {
        Ok(self.trim_once(topic).await? >= TRIM_BATCH)
    }

    /// One trimming step as the retention allows; how many entries it removed.
    pub(crate) async fn trim_once(&self, topic: &str) -> Result<i64, BackendError> {
        let (keep, mode) = match self.config.retention {
            Retention::Settled { keep } => (keep, "settled"),
            Retention::DropUnreadAfter { len } => (len, "unread"),
            _ => return Ok(0),
        };
        let keys = self.keys.topic(topic);
        SCRIPTS
            .trim
            .key(&keys.stream)
            .arg(keep)
            .arg(TRIM_BATCH)
            .arg(mode)
            .invoke_async(&mut self.connection())
            .await
            .map_err(backend_error)
    }

    /// Runs `script` (publish.lua or schedule.lua: KEYS stream and delayed set,
    /// ARGV the cap then `args`) with the topic's registration in the same
    /// round trip. A refusal (an integer reply, what the topic holds) is first
    /// met with a trimming step, since settled entries may be waiting for the
    /// next round, and one more try; then it is `QueueFull`. With replica acks
    /// configured, a `WAIT` follows the script on the same node, and fewer
    /// replicas than asked make it `NotReplicated`.
    pub(crate) async fn capped(
        &self,
        script: &Script,
        topic: &str,
        args: &[&[u8]],
        written: usize,
    ) -> Result<Value, BackendError> {
        let keys = self.keys.topic(topic);
        let mut trimmed = false;
        let mut loaded = false;
        // Redirections that reach here (a slot migrating: see
        // `is_redirection`) are tried again until the command timeout.
        let redirected_until = tokio::time::Instant::now() + self.config.command_timeout;
        let mut backoff = REDIRECTION_BACKOFF;
        loop {
            let mut call = redis::cmd("EVALSHA");
            call.arg(script.get_hash())
                .arg(2)
                .arg(&keys.stream)
                .arg(&keys.delayed)
                .arg(self.config.topic_cap);
            for arg in args {
                call.arg(*arg);
            }
            let wait = self.config.replica_acks.map(|acks| {
                let mut wait = redis::cmd("WAIT");
                let millis = u64::try_from(acks.timeout.as_millis()).unwrap_or(u64::MAX);
                wait.arg(acks.replicas).arg(millis.max(1));
                wait
            });
            let reply = self.registering_waiting(topic, call, wait).await;
            match reply {
                Ok((Value::Int(_), _)) if !trimmed => {
                    trimmed = true;
                    if self.trim_once(topic).await? == 0 {
                        break;
                    }
                }
                Ok((Value::Int(_), _)) => break,
                Ok((value, acknowledged)) => match (self.config.replica_acks, acknowledged) {
                    (Some(acks), Some(acknowledged)) if acknowledged < acks.replicas => {
                        return Err(BackendError::unavailable(NotReplicated {
                            topic: topic.to_owned(),
                            required: acks.replicas,
                            acknowledged,
                            timeout: acks.timeout,
                            written,
                        }));
                    }
                    _ => return Ok(value),
                },
                Err(error)
                    if is_redirection(&error)
                        && tokio::time::Instant::now() + backoff < redirected_until =>
                {
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(REDIRECTION_BACKOFF_MAX);
                }
                Err(error)
                    if !loaded && error.kind() == ErrorKind::Server(ServerErrorKind::NoScript) =>
                {
                    loaded = true;
                    let _: String = script
                        .load_async(&mut self.connection())
                        .await
                        .map_err(backend_error)?;
                }
                Err(error) => return Err(backend_error(error)),
            }
        }
        Err(BackendError::QueueFull {
            topic: topic.to_owned(),
            cap: self.config.topic_cap as u64,
            written,
        })
    }

    /// Appends messages of one topic, all or none against its cap.
    pub(crate) async fn append(
        &self,
        topic: &str,
        jsons: &[Vec<u8>],
        written: usize,
    ) -> Result<Vec<String>, BackendError> {
        let args: Vec<&[u8]> = jsons.iter().map(Vec::as_slice).collect();
        let value = self.capped(&SCRIPTS.publish, topic, &args, written).await?;
        let ids: Vec<String> = redis::from_redis_value(value).map_err(BackendError::command)?;
        // The stream grew: settled entries past what the retention keeps (or,
        // with DropUnreadAfter, any) may be trimmable now.
        self.touched(topic);
        Ok(ids)
    }

    /// Runs `command` (a script call on `topic`'s keys) and adds `topic` to the
    /// registry in the same round trip: one pipeline on a single node; on a
    /// cluster, where the registry is in another slot, both at once.
    pub(crate) async fn registering(&self, topic: &str, command: Cmd) -> Result<Value, RedisError> {
        Ok(self.registering_waiting(topic, command, None).await?.0)
    }

    /// [`Self::registering`], then `wait` (a `WAIT`) right after `command` on
    /// the same connection to the same node, in one pipeline, so it counts the
    /// replicas that have what `command` wrote (on a cluster the pipeline goes
    /// to the master of `command`'s slot, whatever the topology is by then);
    /// returns `WAIT`'s reply too.
    async fn registering_waiting(
        &self,
        topic: &str,
        command: Cmd,
        wait: Option<Cmd>,
    ) -> Result<(Value, Option<usize>), RedisError> {
        let mut register = redis::cmd("SADD");
        register.arg(self.keys.registry()).arg(topic);
        let waited = |replies: Vec<Value>| -> Result<(Value, Option<usize>), RedisError> {
            let mut replies = replies.into_iter();
            let reply = replies.next().unwrap_or(Value::Nil);
            let acknowledged = replies.next().map(redis::from_redis_value).transpose()?;
            Ok((reply, acknowledged))
        };
        if self.connection.is_cluster() {
            let mut script_connection = self.connection();
            let mut registry_connection = self.connection();
            let script = async {
                match wait {
                    Some(wait) => {
                        let mut pipe = redis::pipe();
                        pipe.add_command(command).add_command(wait);
                        waited(pipe.query_async(&mut script_connection).await?)
                    }
                    None => Ok((command.query_async(&mut script_connection).await?, None)),
                }
            };
            let (reply, registered) = tokio::join!(
                script,
                register.query_async::<i64>(&mut registry_connection)
            );
            registered?;
            reply
        } else {
            let mut pipe = redis::pipe();
            pipe.add_command(command).add_command(register).ignore();
            if let Some(wait) = wait {
                pipe.add_command(wait);
            }
            waited(pipe.query_async(&mut self.connection()).await?)
        }
    }

    pub(crate) async fn register(&self, topic: &str) -> Result<(), BackendError> {
        let _: i64 = redis::cmd("SADD")
            .arg(self.keys.registry())
            .arg(topic)
            .query_async(&mut self.connection())
            .await
            .map_err(backend_error)?;
        Ok(())
    }

    /// Right after a delayed message was added to `topic`'s delayed set with
    /// `score`: lowers the topic's due-index entry to it, so every process's
    /// next read of the index finds it. A command of its own after the
    /// script's reply (the index is in another hash slot). A failure is logged,
    /// not returned: the message is scheduled, this process's own timer still
    /// promotes it, and the sweep restores the entry.
    pub(crate) async fn indexed(&self, topic: &str, score: i64) {
        if let Err(error) = self.index_due(topic, score).await {
            warn!(%topic, %error, "adding a delayed message to the due index failed; this process promotes it at its time, and the next sweep indexes it");
        }
    }

    pub(crate) async fn create_group(
        &self,
        topic: &str,
        group: &str,
        start: StartFrom,
    ) -> Result<(), BackendError> {
        let keys = self.keys.topic(topic);
        let start = match start {
            StartFrom::Earliest => "0",
            StartFrom::Latest => "$",
        };
        let created: Result<(), RedisError> = redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(&keys.stream)
            .arg(group)
            .arg(start)
            .arg("MKSTREAM")
            .query_async(&mut self.connection())
            .await;
        match created {
            Ok(()) => Ok(()),
            Err(error) if is_busy_group(&error) => Ok(()),
            Err(error) => Err(backend_error(error)),
        }
    }

    /// After NOGROUP (the topic or the group was deleted, or a Redis without
    /// persistence restarted): recreate the group from the start of what is there.
    pub(crate) async fn recover_group(&self, topic: &str, group: &str) -> Result<(), BackendError> {
        warn!(%topic, %group, "consumer group missing (topic deleted or Redis restarted); recreating it");
        self.register(topic).await?;
        self.create_group(topic, group, StartFrom::Earliest).await
    }

    /// Acknowledges receipts of one topic and group in one fenced script call;
    /// true for each that was still owned, in the order given.
    pub(crate) async fn ack_many(&self, receipts: &[&Receipt]) -> Result<Vec<bool>, RedisError> {
        let Some(first) = receipts.first() else {
            return Ok(Vec::new());
        };
        // Blocks of one consumer each, ids ascending (see lua/ack.lua).
        let mut order: Vec<usize> = (0..receipts.len()).collect();
        order.sort_by_cached_key(|&index| {
            let receipt = receipts[index];
            (
                receipt.consumer.consumer.as_str(),
                codec::id_order(&receipt.entry_id),
            )
        });
        let keys = self.keys.topic(first.topic());
        let mut invocation = SCRIPTS.ack.key(&keys.stream);
        invocation.arg(first.group());
        for block in
            order.chunk_by(|&a, &b| receipts[a].consumer.consumer == receipts[b].consumer.consumer)
        {
            let low = receipts[block[0]];
            let high = receipts[block[block.len() - 1]];
            invocation
                .arg(&low.consumer.consumer)
                .arg(block.len())
                .arg(&low.entry_id)
                .arg(&high.entry_id);
            for &index in block {
                invocation
                    .arg(&receipts[index].entry_id)
                    .arg(receipts[index].delivery_count);
            }
        }
        let settled: Vec<i64> = invocation.invoke_async(&mut self.connection()).await?;
        if settled.contains(&1) {
            self.touched(first.topic());
        }
        let mut owned = vec![false; receipts.len()];
        for (&index, done) in order.iter().zip(settled) {
            owned[index] = done == 1;
        }
        Ok(owned)
    }
}

/// Settled, or lost ownership (logged: the caller was too slow and another
/// consumer took the delivery over).
pub(crate) fn settlement(receipt: &Receipt, action: &'static str, done: bool) -> Settlement {
    if done {
        return Settlement::Settled;
    }
    warn!(
        topic = %receipt.consumer.topic,
        group = %receipt.consumer.group,
        consumer = %receipt.consumer.consumer,
        entry = %receipt.entry_id,
        delivery = receipt.delivery_count,
        action,
        "fenced: the delivery was reclaimed by another consumer, so this one changes nothing"
    );
    Settlement::LostOwnership
}

/// The delayed-set score of a due time: milliseconds, rounded up so a message is
/// never promoted before its time.
pub(crate) fn due_score(at: DateTime<Utc>) -> i64 {
    at.timestamp_micros().saturating_add(999).div_euclid(1000)
}

/// The delayed-set member of a message: a nonce keeps two schedules of the same
/// message apart.
pub(crate) fn delayed_member(message: &Message) -> Result<Vec<u8>, BackendError> {
    let mut member = uuid::Uuid::now_v7().simple().to_string().into_bytes();
    member.push(b'|');
    member.extend(codec::encode(message)?);
    Ok(member)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn due_scores_round_up_to_the_millisecond() {
        let at = DateTime::from_timestamp_micros(1_000_000_001).unwrap();
        assert_eq!(due_score(at), 1_000_001);
        let exact = DateTime::from_timestamp_micros(1_000_000_000).unwrap();
        assert_eq!(due_score(exact), 1_000_000);
    }
}
