//! [`ScheduleBackend`] for [`RedisBackend`]: definitions in the hash
//! `P:schedules` (name → JSON), each schedule's mark (the last tick published or
//! skipped, ms) in `{P:T}:tick:<name>`, in its topic's slot, so that
//! `fire_tick.lua` appends the tick's message and moves the mark in one step:
//! a tick is published once whatever the number of schedulers.
//!
//! Changing a schedule's topic starts its marks afresh on the new topic.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use messaging_core::BackendError;
use messaging_core::schedule::{Schedule, ScheduleBackend, ScheduleState};
use messaging_model::Message;
use redis::Value;
use tracing::warn;

use crate::RedisBackend;
use crate::codec;
use crate::error::backend_error;
use crate::scripts::SCRIPTS;

fn check(schedule: &Schedule) -> Result<(), BackendError> {
    messaging_core::schedule::validate_schedule_name(&schedule.name).map_err(|error| {
        BackendError::command(messaging_model::ValidationError::InvalidTopic {
            topic: schedule.name.clone(),
            reason: match error {
                messaging_core::schedule::ScheduleError::InvalidName { .. } => {
                    "not a valid schedule name"
                }
                _ => "invalid schedule",
            },
        })
    })?;
    messaging_model::validate_topic(&schedule.topic).map_err(BackendError::command)?;
    Ok(())
}

impl RedisBackend {
    async fn stored_schedule(&self, name: &str) -> Result<Option<Schedule>, BackendError> {
        let json: Option<String> = redis::cmd("HGET")
            .arg(self.inner.keys.schedules())
            .arg(name)
            .query_async(&mut self.inner.connection())
            .await
            .map_err(backend_error)?;
        Ok(
            json.and_then(|json| match serde_json::from_str::<Schedule>(&json) {
                Ok(schedule) => Some(schedule),
                Err(error) => {
                    warn!(schedule = name, %error, "a stored schedule cannot be read; ignored");
                    None
                }
            }),
        )
    }
}

#[async_trait]
impl ScheduleBackend for RedisBackend {
    async fn save_schedule(&self, schedule: &Schedule) -> Result<(), BackendError> {
        check(schedule)?;
        let json = serde_json::to_string(schedule).map_err(BackendError::command)?;
        let _: i64 = redis::cmd("HSET")
            .arg(self.inner.keys.schedules())
            .arg(&schedule.name)
            .arg(json)
            .query_async(&mut self.inner.connection())
            .await
            .map_err(backend_error)?;
        Ok(())
    }

    async fn remove_schedule(&self, name: &str) -> Result<bool, BackendError> {
        if let Some(schedule) = self.stored_schedule(name).await? {
            let _: i64 = redis::cmd("DEL")
                .arg(self.inner.keys.schedule_mark(&schedule.topic, name))
                .query_async(&mut self.inner.connection())
                .await
                .map_err(backend_error)?;
        }
        let removed: i64 = redis::cmd("HDEL")
            .arg(self.inner.keys.schedules())
            .arg(name)
            .query_async(&mut self.inner.connection())
            .await
            .map_err(backend_error)?;
        Ok(removed > 0)
    }

    async fn schedules(&self) -> Result<Vec<ScheduleState>, BackendError> {
        let stored: Vec<(String, String)> = redis::cmd("HGETALL")
            .arg(self.inner.keys.schedules())
            .query_async(&mut self.inner.connection())
            .await
            .map_err(backend_error)?;
        let mut schedules = Vec::with_capacity(stored.len());
        for (name, json) in stored {
            match serde_json::from_str::<Schedule>(&json) {
                Ok(schedule) if schedule.name == name => schedules.push(schedule),
                Ok(_) => warn!(schedule = %name, "a stored schedule names another; ignored"),
                Err(error) => {
                    warn!(schedule = %name, %error, "a stored schedule cannot be read; ignored")
                }
            }
        }
        schedules.sort_by(|a, b| a.name.cmp(&b.name));
        if schedules.is_empty() {
            return Ok(Vec::new());
        }
        // The marks live in their topics' slots: one GET each, pipelined.
        let gets: Vec<redis::Cmd> = schedules
            .iter()
            .map(|schedule| {
                let mut get = redis::cmd("GET");
                get.arg(
                    self.inner
                        .keys
                        .schedule_mark(&schedule.topic, &schedule.name),
                );
                get
            })
            .collect();
        let marks: Vec<Option<i64>> = self
            .inner
            .connection()
            .query_each(&gets)
            .await
            .map_err(backend_error)?;
        Ok(schedules
            .into_iter()
            .zip(marks)
            .map(|(schedule, mark)| {
                ScheduleState::new(schedule, mark.and_then(DateTime::from_timestamp_millis))
            })
            .collect())
    }

    async fn set_schedule_paused(&self, name: &str, paused: bool) -> Result<bool, BackendError> {
        let Some(schedule) = self.stored_schedule(name).await? else {
            return Ok(false);
        };
        self.save_schedule(&schedule.paused(paused)).await?;
        Ok(true)
    }

    async fn fire_tick(
        &self,
        schedule: &Schedule,
        tick: DateTime<Utc>,
        message: &Message,
    ) -> Result<bool, BackendError> {
        check(schedule)?;
        if message.topic != schedule.topic {
            return Err(BackendError::command(format!(
                "the tick's message is for {}, the schedule's topic is {}",
                message.topic, schedule.topic
            )));
        }
        let json = codec::encode(message)?;
        let keys = self.inner.keys.topic(&schedule.topic);
        let mark = self
            .inner
            .keys
            .schedule_mark(&schedule.topic, &schedule.name);
        let call = || {
            let mut call = redis::cmd("EVALSHA");
            call.arg(SCRIPTS.fire_tick.get_hash())
                .arg(3)
                .arg(&keys.stream)
                .arg(&keys.delayed)
                .arg(&mark)
                .arg(self.inner.config.topic_cap)
                .arg(tick.timestamp_millis())
                .arg(&json);
            call
        };
        let reply = match self.inner.registering(&schedule.topic, call()).await {
            Err(error)
                if error.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript) =>
            {
                // Loaded once, then the same call again.
                let _: String = SCRIPTS
                    .fire_tick
                    .prepare_invoke()
                    .load_async(&mut self.inner.connection())
                    .await
                    .map_err(backend_error)?;
                self.inner.registering(&schedule.topic, call()).await
            }
            other => other,
        }
        .map(|value| (value,));
        match reply.map_err(backend_error)? {
            (Value::Int(1),) => {
                self.inner.touched(&schedule.topic);
                Ok(true)
            }
            (Value::Int(_),) => Ok(false),
            (Value::Array(_),) => Err(BackendError::QueueFull {
                topic: schedule.topic.clone(),
                cap: self.inner.config.topic_cap as u64,
                written: 0,
            }),
            (other,) => Err(BackendError::command(format!(
                "fire_tick.lua answered {other:?}"
            ))),
        }
    }

    async fn skip_to_tick(
        &self,
        schedule: &Schedule,
        tick: DateTime<Utc>,
    ) -> Result<bool, BackendError> {
        check(schedule)?;
        let moved: i64 = SCRIPTS
            .skip_tick
            .key(
                self.inner
                    .keys
                    .schedule_mark(&schedule.topic, &schedule.name),
            )
            .arg(tick.timestamp_millis())
            .invoke_async(&mut self.inner.connection())
            .await
            .map_err(backend_error)?;
        Ok(moved == 1)
    }
}
