//! Administration of the Redis backend, off the hot path: topics, groups,
//! figures, health and the dead-letter queue, as [`BackendAdmin`].

use async_trait::async_trait;
use messaging_core::{
    BackendAdmin, BackendError, BackendHealth, DeadLetter, GroupStats, TopicStats,
};
use messaging_model::Topic;
use redis::{RedisError, Value};
use tracing::warn;

use crate::dead_letters::MAX_DEAD_LETTER_PAGE;
use crate::error::backend_error;
use crate::scripts::SCRIPTS;
use crate::{RedisBackend, UndecodableDeadLetter, codec};

#[async_trait]
impl BackendAdmin for RedisBackend {
    async fn create_topic(&self, topic: &Topic) -> Result<(), BackendError> {
        // Checked here too: through the trait, a name with ':' reached
        // another tenant's keys (prefix `shop` + topic `eu:orders`).
        self.inner.register(topic).await
    }

    async fn delete_topic(&self, topic: &Topic) -> Result<bool, BackendError> {
        let inner = &self.inner;
        let keys = inner.keys.topic(topic);
        let mut delete = redis::cmd("DEL");
        delete
            .arg(&keys.stream)
            .arg(&keys.delayed)
            .arg(&keys.dead)
            .arg(&keys.paused);
        let mut unregister = redis::cmd("SREM");
        unregister.arg(inner.keys.registry()).arg(topic.as_str());
        let mut unindex = redis::cmd("ZREM");
        unindex.arg(inner.keys.due_index()).arg(topic.as_str());
        let replies: Vec<i64> = inner
            .connection()
            .query_each(&[delete, unregister, unindex])
            .await
            .map_err(backend_error)?;
        let (deleted, unregistered) = (replies[0], replies[1]);
        // The topic's unique-key locks and schedule marks go with it.
        let tag = keys.stream.trim_end_matches(":stream");
        let mut extras = Vec::new();
        for pattern in [format!("{tag}:unique:*"), format!("{tag}:tick:*")] {
            let mut cursor = 0u64;
            loop {
                let (next, found) = inner
                    .connection()
                    .scan_slot_of(&keys.stream, cursor, &pattern, 1000)
                    .await
                    .map_err(backend_error)?;
                extras.extend(found);
                if next == 0 {
                    break;
                }
                cursor = next;
            }
        }
        for chunk in extras.chunks(500) {
            let _: i64 = redis::cmd("DEL")
                .arg(chunk)
                .query_async(&mut inner.connection())
                .await
                .map_err(backend_error)?;
        }
        inner.schedule.forget(topic);
        inner
            .cursors()
            .retain(|(cursor_topic, _), _| cursor_topic != topic);
        Ok(deleted > 0 || unregistered > 0)
    }

    async fn list_topics(&self) -> Result<Vec<Topic>, BackendError> {
        let names: Vec<String> = redis::cmd("SMEMBERS")
            .arg(self.inner.keys.registry())
            .query_async(&mut self.inner.connection())
            .await
            .map_err(backend_error)?;
        // Only checked topics are registered; a name written there by something
        // else is no topic of ours and is left out.
        let mut topics: Vec<Topic> = names
            .into_iter()
            .filter_map(|name| Topic::new(name).ok())
            .collect();
        topics.sort_unstable();
        Ok(topics)
    }

    async fn delete_group(&self, topic: &Topic, group: &str) -> Result<bool, BackendError> {
        let inner = &self.inner;
        let keys = inner.keys.topic(topic);
        let destroyed: Result<i64, RedisError> = redis::cmd("XGROUP")
            .arg("DESTROY")
            .arg(&keys.stream)
            .arg(group)
            .query_async(&mut inner.connection())
            .await;
        inner
            .cursors()
            .remove(&(topic.to_string(), group.to_owned()));
        match destroyed {
            Ok(destroyed) => {
                if destroyed > 0 {
                    // What only that group held back may be trimmable now.
                    inner.touched(topic);
                }
                Ok(destroyed > 0)
            }
            // "requires the key to exist": no stream, so no group either.
            Err(error) if error.code() == Some("ERR") && !error.is_io_error() => {
                let exists: i64 = redis::cmd("EXISTS")
                    .arg(&keys.stream)
                    .query_async(&mut inner.connection())
                    .await
                    .map_err(backend_error)?;
                if exists == 0 {
                    Ok(false)
                } else {
                    Err(backend_error(error))
                }
            }
            Err(error) => Err(backend_error(error)),
        }
    }

    async fn dead_letters(
        &self,
        topic: &Topic,
        limit: usize,
    ) -> Result<Vec<DeadLetter>, BackendError> {
        self.dead_letters_after(topic, None, limit).await
    }

    async fn dead_letters_after(
        &self,
        topic: &Topic,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<DeadLetter>, BackendError> {
        // Pages on past entries that are no dead letter (written by something
        // else): 600 of them first once hid every real one, and
        // `replay_all_dead_letters` replayed none.
        let mut found = Vec::new();
        let mut skipped: Vec<UndecodableDeadLetter> = Vec::new();
        let mut after: Option<String> = after.map(str::to_owned);
        while found.len() < limit {
            let want = limit - found.len();
            // Read what is still wanted, more when junk showed up.
            let count = want.max(skipped.len().min(MAX_DEAD_LETTER_PAGE));
            let page = self
                .inner
                .dead_letter_page(topic, after.as_deref(), count)
                .await?;
            found.extend(page.dead_letters.into_iter().take(want));
            if skipped.len() < MAX_DEAD_LETTER_PAGE {
                skipped.extend(page.undecodable);
            } else {
                skipped.truncate(MAX_DEAD_LETTER_PAGE);
            }
            match page.next {
                Some(next) => after = Some(next),
                None => break,
            }
        }
        if let Some(first) = skipped.first() {
            warn!(
                %topic,
                skipped = skipped.len(),
                first = %first.id,
                reason = %first.reason,
                "the dead-letter stream holds entries that are no dead letter; listed past them (see RedisBackend::dead_letter_page)"
            );
        }
        Ok(found)
    }

    /// One `XRANGE id id` on the dead-letter stream.
    async fn find_dead_letter(
        &self,
        topic: &Topic,
        id: &str,
    ) -> Result<Option<DeadLetter>, BackendError> {
        if !codec::is_stream_id(id) {
            return Ok(None);
        }
        let keys = self.inner.keys.topic(topic);
        let reply: Value = redis::cmd("XRANGE")
            .arg(&keys.dead)
            .arg(id)
            .arg(id)
            .query_async(&mut self.inner.connection())
            .await
            .map_err(backend_error)?;
        let Some((id, fields)) = codec::entries(reply).into_iter().next() else {
            return Ok(None);
        };
        codec::decode_dead_letter(&id, &fields)
            .map(Some)
            .map_err(|reason| BackendError::Corrupt {
                topic: topic.to_string(),
                entry_id: id.clone(),
                reason,
            })
    }

    async fn replay_dead_letter(&self, topic: &Topic, id: &str) -> Result<bool, BackendError> {
        let Some(dead) = self.find_dead_letter(topic, id).await? else {
            return Ok(false);
        };
        let inner = &self.inner;
        let keys = inner.keys.topic(topic);
        let json = codec::encode(&dead.replay_message())?;
        let replayed: i64 = SCRIPTS
            .replay
            .key(&keys.dead)
            .key(&keys.stream)
            .arg(&dead.id)
            .arg(json)
            .invoke_async(&mut inner.connection())
            .await
            .map_err(backend_error)?;
        if replayed == 1 {
            inner.touched(topic);
        }
        Ok(replayed == 1)
    }

    async fn purge_dead_letters(&self, topic: &Topic) -> Result<u64, BackendError> {
        let keys = self.inner.keys.topic(topic);
        let purged: u64 = SCRIPTS
            .purge
            .key(&keys.dead)
            .invoke_async(&mut self.inner.connection())
            .await
            .map_err(backend_error)?;
        Ok(purged)
    }

    async fn stats(&self, topic: &Topic) -> Result<TopicStats, BackendError> {
        let inner = &self.inner;
        inner.promote(topic).await?;
        let keys = inner.keys.topic(topic);
        let reply: Value = SCRIPTS
            .stats
            .key(&keys.stream)
            .key(&keys.delayed)
            .key(&keys.dead)
            .invoke_async(&mut inner.connection())
            .await
            .map_err(backend_error)?;
        let paused = crate::pause::pause_state(inner, topic).await?;
        let items = codec::items(reply);
        let count = |index: usize| {
            items
                .get(index)
                .and_then(codec::int)
                .and_then(|n| u64::try_from(n).ok())
                .unwrap_or(0)
        };
        let groups = items
            .get(3..)
            .unwrap_or_default()
            .chunks_exact(4)
            .map(|group| {
                let number = |value: &Value| {
                    codec::int(value)
                        .and_then(|n| u64::try_from(n).ok())
                        .unwrap_or(0)
                };
                GroupStats {
                    name: codec::string(&group[0]).unwrap_or_default(),
                    pending: number(&group[1]),
                    lag: number(&group[2]),
                    consumers: number(&group[3]),
                    paused: false,
                }
            })
            .map(|mut group: GroupStats| {
                group.paused = paused.is_paused(&group.name);
                group
            })
            .collect();
        Ok(TopicStats {
            topic: topic.to_string(),
            length: count(0),
            scheduled: count(1),
            dead_lettered: count(2),
            groups,
            paused: paused.all,
        })
    }

    async fn health(&self) -> Result<BackendHealth, BackendError> {
        let mut connection = self.inner.connection();
        let _: String = redis::cmd("PING")
            .query_async(&mut connection)
            .await
            .map_err(backend_error)?;
        let settings: Result<(Value, Value, Value), RedisError> = redis::pipe()
            .cmd("CONFIG")
            .arg("GET")
            .arg("maxmemory-policy")
            .cmd("CONFIG")
            .arg("GET")
            .arg("appendonly")
            .cmd("CONFIG")
            .arg("GET")
            .arg("save")
            .query_async(&mut connection)
            .await;
        let mut warnings = Vec::new();
        match settings {
            Ok((policy, appendonly, save)) => {
                let value = |reply: &Value| {
                    codec::fields(reply.clone())
                        .and_then(|pairs| pairs.into_iter().next())
                        .map(|(_, value)| String::from_utf8_lossy(&value).into_owned())
                };
                match value(&policy).as_deref() {
                    Some("noeviction") => {}
                    Some(policy) => warnings.push(format!(
                        "maxmemory-policy is {policy}: Redis may evict message keys under memory pressure and lose messages silently; set it to noeviction"
                    )),
                    None => warnings.push("could not read maxmemory-policy; make sure it is noeviction".to_owned()),
                }
                let aof = value(&appendonly).as_deref() == Some("yes");
                let snapshots = value(&save).is_some_and(|save| !save.trim().is_empty());
                if !aof && !snapshots {
                    warnings.push(
                        "persistence is off (appendonly no, no save points): a Redis restart loses every message; enable appendonly".to_owned(),
                    );
                }
            }
            Err(error) => warnings.push(format!(
                "could not read the server's settings ({error}); make sure maxmemory-policy is noeviction and appendonly is on"
            )),
        }
        Ok(BackendHealth { warnings })
    }
}

/// Partition counts live in one hash, `{prefix}:partitions` (topic → count),
/// written once per topic with `HSETNX`.
#[async_trait]
impl messaging_core::PartitionRegistry for RedisBackend {
    async fn recorded_partitions(&self, topic: &Topic) -> Result<Option<u16>, BackendError> {
        let count: Option<String> = redis::cmd("HGET")
            .arg(self.inner.keys.partitions())
            .arg(topic.as_str())
            .query_async(&mut self.inner.connection())
            .await
            .map_err(backend_error)?;
        count.map(|text| parse_count(topic, &text)).transpose()
    }

    async fn record_partitions(&self, topic: &Topic, count: u16) -> Result<u16, BackendError> {
        let mut connection = self.inner.connection();
        let _: i64 = redis::cmd("HSETNX")
            .arg(self.inner.keys.partitions())
            .arg(topic.as_str())
            .arg(count)
            .query_async(&mut connection)
            .await
            .map_err(backend_error)?;
        let recorded: String = redis::cmd("HGET")
            .arg(self.inner.keys.partitions())
            .arg(topic.as_str())
            .query_async(&mut connection)
            .await
            .map_err(backend_error)?;
        parse_count(topic, &recorded)
    }

    async fn forget_partitions(&self, topic: &Topic) -> Result<(), BackendError> {
        let _: i64 = redis::cmd("HDEL")
            .arg(self.inner.keys.partitions())
            .arg(topic.as_str())
            .query_async(&mut self.inner.connection())
            .await
            .map_err(backend_error)?;
        Ok(())
    }
}

/// A record that is not one (written by something else) is corrupt.
fn parse_count(topic: &Topic, text: &str) -> Result<u16, BackendError> {
    text.parse::<u16>()
        .ok()
        .filter(|record| messaging_core::partition::is_valid_record(*record))
        .ok_or_else(|| BackendError::Corrupt {
            topic: topic.to_string(),
            entry_id: "partitions".to_owned(),
            reason: format!(
                "partition record {text:?} is neither a count of 1 to 1023 nor a priority layout"
            ),
        })
}
