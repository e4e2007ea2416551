//! Cancelling a message that no consumer has received yet, by its id
//! ([`messaging_core::CancelBackend`]).
//!
//! No index is kept: publishing, scheduling and promoting cost what they did,
//! and a cancel pays instead, with a scan in bounded steps (each one script,
//! so none holds the server for long):
//!
//! 1. the topic's delayed set, `ZSCAN … MATCH *|{"id":"<id>"*` in steps of
//!    [`SCAN_STEP`] (`lua/cancel_delayed.lua`, which `ZREM`s each match in the
//!    same script: atomic against `lua/promote.lua`);
//! 2. then the stream, only past the latest last-delivered id of all groups
//!    (what some group has read is not cancellable), [`SCAN_STEP`] entries a
//!    step (`lua/cancel_waiting.lua`, which `XDEL`s each match after checking
//!    the groups in the same script: atomic against reads).
//!
//! A copy promoted from the delayed set while step 1 runs lands at the
//! stream's end, which step 2 reaches after it. The cost is one round trip
//! per [`SCAN_STEP`] delayed messages plus one per [`SCAN_STEP`] unread
//! entries (the backlog of the group that is furthest ahead, the whole stream
//! when there is no group).

use async_trait::async_trait;
use messaging_core::{BackendError, CancelBackend};
use messaging_model::Topic;
use redis::Value;

use crate::RedisBackend;
use crate::codec;
use crate::error::backend_error;
use crate::scripts::SCRIPTS;

/// Delayed messages or stream entries looked at by one script call.
const SCAN_STEP: usize = 500;

#[async_trait]
impl CancelBackend for RedisBackend {
    async fn cancel(&self, topic: &Topic, id: uuid::Uuid) -> Result<bool, BackendError> {
        let inner = &self.inner;
        let keys = inner.keys.topic(topic);
        let id = id.hyphenated().to_string();
        let mut removed: i64 = 0;

        let mut cursor = "0".to_owned();
        loop {
            let reply: Value = SCRIPTS
                .cancel_delayed
                .key(&keys.delayed)
                .arg(&cursor)
                .arg(&id)
                .arg(SCAN_STEP)
                .invoke_async(&mut inner.connection())
                .await
                .map_err(backend_error)?;
            let (next, step) = step_reply(reply, "cancel_delayed.lua")?;
            removed += step;
            if next == "0" {
                break;
            }
            cursor = next;
        }

        let mut after = "0-0".to_owned();
        loop {
            let reply: Value = SCRIPTS
                .cancel_waiting
                .key(&keys.stream)
                .arg(&after)
                .arg(&id)
                .arg(SCAN_STEP)
                .invoke_async(&mut inner.connection())
                .await
                .map_err(backend_error)?;
            let (next, step) = step_reply(reply, "cancel_waiting.lua")?;
            removed += step;
            if next.is_empty() {
                break;
            }
            after = next;
        }
        if removed > 0 {
            // The stream or the delayed set shrank: trimming may move on.
            inner.touched(topic);
        }
        Ok(removed > 0)
    }
}

/// `{ cursor, removed }` of one scan step.
fn step_reply(reply: Value, script: &str) -> Result<(String, i64), BackendError> {
    let items = codec::items(reply);
    match (
        items.first().and_then(codec::string),
        items.get(1).and_then(codec::int),
    ) {
        (Some(cursor), Some(removed)) => Ok((cursor, removed)),
        _ => Err(BackendError::command(format!(
            "{script} returned no {{cursor, removed}} pair"
        ))),
    }
}
