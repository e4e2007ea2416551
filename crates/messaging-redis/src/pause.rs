//! Pausing a topic for consumer groups ([`messaging_core::PauseBackend`]).
//!
//! The state is one set per topic, `{P:T}:paused`, in the topic's slot: a
//! member `group:<name>` per paused group and `*` when the whole topic is
//! paused. Every change is one single-key command (`SADD`, `SREM`, `DEL`), so
//! it is atomic and cluster-safe; the subscription runtime reads it with one
//! `SMEMBERS` per check (at most once a second per subscription).

use async_trait::async_trait;
use messaging_core::{BackendError, PauseBackend, PauseState};
use messaging_model::Topic;

use crate::RedisBackend;
use crate::error::backend_error;
use crate::inner::Inner;

/// The member standing for every group.
const ALL: &str = "*";
/// The prefix of a paused group's member.
const GROUP: &str = "group:";

pub(crate) async fn pause_state(inner: &Inner, topic: &Topic) -> Result<PauseState, BackendError> {
    let members: Vec<String> = redis::cmd("SMEMBERS")
        .arg(&inner.keys.topic(topic).paused)
        .query_async(&mut inner.connection())
        .await
        .map_err(backend_error)?;
    let mut state = PauseState::default();
    for member in members {
        if member == ALL {
            state.all = true;
        } else if let Some(group) = member.strip_prefix(GROUP) {
            state.groups.insert(group.to_owned());
        }
    }
    Ok(state)
}

#[async_trait]
impl PauseBackend for RedisBackend {
    async fn set_paused(
        &self,
        topic: &Topic,
        group: Option<&str>,
        paused: bool,
    ) -> Result<bool, BackendError> {
        let key = &self.inner.keys.topic(topic).paused;
        let member = group.map_or_else(|| ALL.to_owned(), |group| format!("{GROUP}{group}"));
        let command = match (group, paused) {
            (None, false) => {
                let mut command = redis::cmd("DEL");
                command.arg(key);
                command
            }
            (_, true) => {
                let mut command = redis::cmd("SADD");
                command.arg(key).arg(&member);
                command
            }
            (Some(_), false) => {
                let mut command = redis::cmd("SREM");
                command.arg(key).arg(&member);
                command
            }
        };
        let changed: i64 = command
            .query_async(&mut self.inner.connection())
            .await
            .map_err(backend_error)?;
        Ok(changed > 0)
    }

    async fn pause_state(&self, topic: &Topic) -> Result<PauseState, BackendError> {
        pause_state(&self.inner, topic).await
    }
}
