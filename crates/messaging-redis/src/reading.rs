//! Getting deliveries out of Redis: blocking reads of new entries, a consumer's
//! own pending entries, reclaiming idle ones, and decoding them (entries that
//! cannot be decoded go to the dead-letter queue).

use std::time::Duration;

use messaging_core::{BackendError, ConsumerId, Delivery, Receipt};
use messaging_model::{Message, MessageStatus};
use redis::{Cmd, RedisError, Value};
use tracing::{error, warn};

use crate::codec::{self, RawEntry};
use crate::connection::Connection;
use crate::error::{backend_error, is_no_group, is_unblocked};
use crate::inner::Inner;
use crate::scripts::SCRIPTS;

/// XAUTOCLAIM calls one `reclaim_idle` makes at most while it finds too few.
const RECLAIM_ROUNDS: usize = 4;
/// XAUTOCLAIM's cursor for "from the start".
const CURSOR_START: &str = "0-0";

impl Inner {
    /// Runs a blocking command on a connection of its own, bounded by `block`
    /// plus the command timeout. A pooled connection that broke while idle (the
    /// server restarted) is replaced once.
    async fn blocking_query(&self, command: &Cmd, block: Duration) -> Result<Value, RedisError> {
        let (connection, reused) = self
            .blocking
            .take()
            .await
            .inspect_err(|_| self.blocking.clear())?;
        match self.blocking_query_on(connection, command, block).await {
            Err(error) if reused && error.is_connection_dropped() => {
                let fresh = self.blocking.connect().await?;
                self.blocking_query_on(fresh, command, block).await
            }
            result => result,
        }
    }

    async fn blocking_query_on(
        &self,
        mut connection: Connection,
        command: &Cmd,
        block: Duration,
    ) -> Result<Value, RedisError> {
        let limit = block + self.config.command_timeout;
        match tokio::time::timeout(limit, command.query_async::<Value>(&mut connection)).await {
            Ok(Ok(value)) => {
                self.blocking.give_back(connection);
                Ok(value)
            }
            Ok(Err(error)) => {
                if error.is_io_error() || error.is_unrecoverable_error() {
                    // The others were likely opened before the same failure.
                    self.blocking.clear();
                } else {
                    self.blocking.give_back(connection);
                }
                Err(error)
            }
            Err(_elapsed) => {
                self.blocking.clear();
                Err(
                    std::io::Error::new(std::io::ErrorKind::TimedOut, "blocking read timed out")
                        .into(),
                )
            }
        }
    }

    pub(crate) async fn read_new(
        &self,
        id: &ConsumerId,
        count: usize,
        block: Duration,
    ) -> Result<Vec<Delivery>, BackendError> {
        let (topic, group, consumer) = (id.topic.as_str(), id.group.as_str(), id.consumer.as_str());
        let keys = self.keys.topic(topic);
        let deadline = tokio::time::Instant::now() + block;
        loop {
            // No promotion here: the background task promotes what falls due
            // (see maintenance.rs), and its XADD wakes this read.
            let wait = deadline.saturating_duration_since(tokio::time::Instant::now());
            // Whole milliseconds, rounded up; BLOCK 0 would wait forever, so a
            // read that must not wait leaves BLOCK out.
            let block_ms = u64::try_from(wait.as_micros().div_ceil(1000)).unwrap_or(u64::MAX);
            let mut command = redis::cmd("XREADGROUP");
            command
                .arg("GROUP")
                .arg(group)
                .arg(consumer)
                .arg("COUNT")
                .arg(count);
            if block_ms > 0 {
                command.arg("BLOCK").arg(block_ms);
            }
            command.arg("STREAMS").arg(&keys.stream).arg(">");
            let reply = if block_ms > 0 {
                self.blocking_query(&command, Duration::from_millis(block_ms))
                    .await
            } else {
                command.query_async::<Value>(&mut self.connection()).await
            };
            let reply = match reply {
                Ok(reply) => reply,
                Err(error) if is_no_group(&error) => {
                    self.recover_group(topic, group).await?;
                    return Ok(Vec::new());
                }
                Err(error) if is_unblocked(&error) => return Ok(Vec::new()),
                Err(error) => return Err(backend_error(error)),
            };
            // A new entry has been delivered exactly once.
            let entries: Vec<RawEntry> = codec::read_reply_entries(reply)
                .into_iter()
                .map(|(id, fields)| RawEntry {
                    id,
                    delivery_count: 1,
                    fields,
                })
                .collect();
            if !entries.is_empty() || tokio::time::Instant::now() >= deadline {
                return Ok(self.deliveries(id, entries).await);
            }
        }
    }

    pub(crate) async fn read_own_pending(
        &self,
        id: &ConsumerId,
        after: Option<&str>,
        count: usize,
    ) -> Result<Vec<Delivery>, BackendError> {
        let (topic, group, consumer) = (id.topic.as_str(), id.group.as_str(), id.consumer.as_str());
        let keys = self.keys.topic(topic);
        let reply: Result<Value, RedisError> = SCRIPTS
            .read_pending
            .key(&keys.stream)
            .arg(group)
            .arg(consumer)
            .arg(after.unwrap_or("0"))
            .arg(count)
            .invoke_async(&mut self.connection())
            .await;
        let reply = match reply {
            Ok(reply) => reply,
            Err(error) if is_no_group(&error) => {
                self.recover_group(topic, group).await?;
                return Ok(Vec::new());
            }
            Err(error) => return Err(backend_error(error)),
        };
        let entries = codec::triples(codec::items(reply));
        Ok(self.deliveries(id, entries).await)
    }

    /// Decodes entries into deliveries. An entry that cannot be handed to a
    /// consumer goes to the dead-letter queue instead, with the reason: it
    /// cannot be decoded, or Redis counts its deliveries past a receipt's range
    /// (forged with `XCLAIM … RETRYCOUNT`). If even that fails it stays
    /// pending, to be tried again when reclaimed.
    async fn deliveries(&self, id: &ConsumerId, entries: Vec<RawEntry>) -> Vec<Delivery> {
        let (topic, group, consumer) = (id.topic.as_str(), id.group.as_str(), id.consumer.as_str());
        let mut deliveries = Vec::with_capacity(entries.len());
        let stream = self.keys.topic(topic).stream;
        for entry in entries {
            let decoded = codec::decode(&stream, topic, &entry.id, &entry.fields);
            match (decoded, u32::try_from(entry.delivery_count)) {
                (Ok(message), Ok(delivery_count)) => deliveries.push(Delivery {
                    message,
                    receipt: Receipt {
                        consumer: id.clone(),
                        entry_id: entry.id,
                        delivery_count,
                    },
                }),
                (decoded, count) => {
                    let count_reason = count.is_err().then(|| {
                        format!(
                            "delivery count {} is out of range (0 to {}; forged with XCLAIM … RETRYCOUNT?)",
                            entry.delivery_count,
                            u32::MAX
                        )
                    });
                    self.dead_letter_unreadable(
                        topic,
                        group,
                        consumer,
                        &entry,
                        decoded,
                        count_reason,
                    )
                    .await;
                }
            }
        }
        deliveries
    }

    /// Dead-letters an entry no consumer may have. A decodable one keeps its
    /// message; an undecodable one becomes [`codec::undecodable_message`], a
    /// bounded copy of its fields, and, should Redis refuse even that, one
    /// that keeps only each field's size and hash. Attempts are its delivery
    /// count, saturated to a `u32`.
    async fn dead_letter_unreadable(
        &self,
        topic: &str,
        group: &str,
        consumer: &str,
        entry: &RawEntry,
        decoded: Result<Message, String>,
        count_reason: Option<String>,
    ) {
        let attempts = u32::try_from(entry.delivery_count.max(0)).unwrap_or(u32::MAX);
        let (first, reason, undecodable) = match decoded {
            Ok(mut message) => {
                message.status = MessageStatus::Failed;
                (message, count_reason.unwrap_or_default(), false)
            }
            Err(decode_reason) => {
                let reason = codec::bounded_reason(match count_reason {
                    Some(count_reason) => format!("{count_reason}; {decode_reason}"),
                    None => decode_reason,
                });
                let message = codec::undecodable_message(
                    topic,
                    &entry.id,
                    &entry.fields,
                    &reason,
                    codec::KEPT_ENTRY_BYTES,
                );
                (message, reason, true)
            }
        };
        error!(%topic, %group, entry = %entry.id, %reason, "an entry no consumer can take; moving it to the dead-letter queue");
        let attempt = |message: Message| {
            let reason = &reason;
            async move {
                let json = codec::encode(&message)?;
                self.dead_letter_entry(
                    topic,
                    group,
                    consumer,
                    &entry.id,
                    entry.delivery_count,
                    &json,
                    reason,
                    attempts,
                )
                .await
            }
        };
        let mut outcome = attempt(first).await;
        if undecodable && let Err(error) = &outcome {
            error!(%topic, %group, entry = %entry.id, %error, "could not dead-letter an undecodable entry; trying again with only its fields' sizes and hashes");
            let summary = codec::undecodable_message(topic, &entry.id, &entry.fields, &reason, 0);
            outcome = attempt(summary).await;
        }
        match outcome {
            Ok(true) => {}
            Ok(false) => {
                warn!(%topic, %group, entry = %entry.id, "fenced: another consumer took the entry over, so it dead-letters it")
            }
            Err(error) => {
                error!(%topic, %group, entry = %entry.id, %error, "could not dead-letter an entry no consumer can take; it stays pending");
            }
        }
    }

    /// Takes over idle pending entries with XAUTOCLAIM, carrying the cursor
    /// forward so every pending entry gets its turn however long the pending
    /// list; when the scan wraps, the head is looked at once more.
    pub(crate) async fn reclaim_idle(
        &self,
        id: &ConsumerId,
        min_idle: Duration,
        count: usize,
    ) -> Result<Vec<Delivery>, BackendError> {
        let (topic, group, consumer) = (id.topic.as_str(), id.group.as_str(), id.consumer.as_str());
        if count == 0 {
            return Ok(Vec::new());
        }
        let keys = self.keys.topic(topic);
        let cursor_key = (topic.to_owned(), group.to_owned());
        let mut cursor = self
            .cursors()
            .get(&cursor_key)
            .cloned()
            .unwrap_or_else(|| CURSOR_START.to_owned());
        let mut passed_end = cursor == CURSOR_START;
        let mut entries = Vec::new();
        for _ in 0..RECLAIM_ROUNDS {
            let reply: Result<Value, RedisError> = SCRIPTS
                .reclaim
                .key(&keys.stream)
                .arg(group)
                .arg(consumer)
                .arg(u64::try_from(min_idle.as_millis()).unwrap_or(u64::MAX))
                .arg(&cursor)
                .arg(count - entries.len())
                .invoke_async(&mut self.connection())
                .await;
            let reply = match reply {
                Ok(reply) => reply,
                // The topic or group is gone: nothing to reclaim.
                Err(error) if is_no_group(&error) => break,
                Err(error) => return Err(backend_error(error)),
            };
            let mut items = codec::items(reply);
            let next = items
                .first()
                .and_then(codec::string)
                .unwrap_or_else(|| CURSOR_START.to_owned());
            if !items.is_empty() {
                items.remove(0);
            }
            entries.extend(codec::triples(items));
            cursor = next;
            if entries.len() >= count {
                break;
            }
            if cursor == CURSOR_START {
                if passed_end {
                    break;
                }
                passed_end = true;
            }
        }
        self.cursors().insert(cursor_key, cursor);
        Ok(self.deliveries(id, entries).await)
    }
}
