//! [`UniqueBackend`] for [`RedisBackend`]: a unique key's lock is
//! `{P:T}:unique:<key>` (value: the holder's id, expiring at the hold), in the
//! topic's slot, so `unique_publish.lua` claims it and publishes in one step.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use messaging_core::BackendError;
use messaging_core::unique::{UniqueBackend, validate_unique_key};
use messaging_model::{Message, MessageStatus, Topic};
use redis::Value;
use uuid::Uuid;

use crate::RedisBackend;
use crate::codec;
use crate::error::backend_error;
use crate::inner::{delayed_member, due_score};
use crate::scripts::SCRIPTS;

fn check_key(key: &str) -> Result<(), BackendError> {
    validate_unique_key(key).map_err(|error| BackendError::command(error.to_string()))
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis())
        .unwrap_or(u64::MAX)
        .max(1)
}

#[async_trait]
impl UniqueBackend for RedisBackend {
    async fn publish_unique(
        &self,
        message: &Message,
        deliver_at: Option<DateTime<Utc>>,
        key: &str,
        hold: Duration,
    ) -> Result<Option<Uuid>, BackendError> {
        check_key(key)?;
        let keys = self.inner.keys.topic(&message.topic);
        let lock = self.inner.keys.unique_lock(&message.topic, key);
        let (mode, body, score) = match deliver_at {
            Some(at) => {
                let mut pending = message.clone();
                pending.status = MessageStatus::Pending;
                ("at", delayed_member(&pending)?, Some(due_score(at)))
            }
            None => ("now", codec::encode(message)?, None),
        };
        let mut invocation = SCRIPTS.unique_publish.key(&keys.stream);
        invocation
            .key(&keys.delayed)
            .key(&lock)
            .arg(self.inner.config.topic_cap)
            .arg(message.id.to_string())
            .arg(millis(hold))
            .arg(mode)
            .arg(body)
            .arg(score.unwrap_or(0));
        let reply: Value = invocation
            .invoke_async(&mut self.inner.connection())
            .await
            .map_err(backend_error)?;
        match reply {
            Value::Int(_) => Err(BackendError::QueueFull {
                topic: message.topic.to_string(),
                cap: self.inner.config.topic_cap as u64,
                written: 0,
            }),
            Value::Array(items) => {
                let words: Vec<String> =
                    redis::from_redis_value(Value::Array(items)).map_err(BackendError::command)?;
                match words.as_slice() {
                    [published] if published == "published" => {
                        let _: Result<i64, _> = redis::cmd("SADD")
                            .arg(self.inner.keys.registry())
                            .arg(message.topic.as_str())
                            .query_async(&mut self.inner.connection())
                            .await;
                        match (deliver_at, score) {
                            (Some(at), Some(score)) => {
                                self.inner.indexed(&message.topic, score).await;
                                self.inner.schedule.due_at(&message.topic, at);
                            }
                            _ => self.inner.touched(&message.topic),
                        }
                        Ok(None)
                    }
                    [duplicate, holder] if duplicate == "duplicate" => {
                        Uuid::parse_str(holder).map(Some).map_err(|_| {
                            BackendError::command(format!(
                                "unique key {key:?} is held by {holder:?}, not a message id"
                            ))
                        })
                    }
                    other => Err(BackendError::command(format!(
                        "unique_publish.lua answered {other:?}"
                    ))),
                }
            }
            other => Err(BackendError::command(format!(
                "unique_publish.lua answered {other:?}"
            ))),
        }
    }

    async fn unique_holder(&self, topic: &Topic, key: &str) -> Result<Option<Uuid>, BackendError> {
        check_key(key)?;
        let holder: Option<String> = redis::cmd("GET")
            .arg(self.inner.keys.unique_lock(topic, key))
            .query_async(&mut self.inner.connection())
            .await
            .map_err(backend_error)?;
        Ok(holder.and_then(|holder| Uuid::parse_str(&holder).ok()))
    }

    async fn release_unique(
        &self,
        topic: &Topic,
        key: &str,
        id: Uuid,
        after: Duration,
    ) -> Result<bool, BackendError> {
        check_key(key)?;
        let after = u64::try_from(after.as_millis()).unwrap_or(u64::MAX);
        let released: i64 = SCRIPTS
            .unique_release
            .key(self.inner.keys.unique_lock(topic, key))
            .arg(id.to_string())
            .arg(after)
            .invoke_async(&mut self.inner.connection())
            .await
            .map_err(backend_error)?;
        Ok(released == 1)
    }
}
