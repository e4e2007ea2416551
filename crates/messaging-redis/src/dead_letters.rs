//! The dead-letter stream of a topic: paging it (reporting apart the entries
//! that are no dead letter this backend can read) and writing a dead letter.

use messaging_core::{BackendError, DeadLetter, Receipt, Settlement};
use messaging_model::Message;
use redis::Value;

use crate::codec;
use crate::error::backend_error;
use crate::scripts::SCRIPTS;

use crate::inner::{Inner, settlement};

/// One page of a topic's dead-letter stream ([`RedisBackend::dead_letter_page`]).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct DeadLetterPage {
    /// The page's dead letters, oldest first.
    pub dead_letters: Vec<DeadLetter>,
    /// The page's entries that are no dead letter this backend can read
    /// (written to the stream by something else): reported, never replayed,
    /// removed only by a purge.
    pub undecodable: Vec<UndecodableDeadLetter>,
    /// Where the next page starts (the `after` of the next call), or `None`
    /// when this page reached the end of the stream.
    pub next: Option<String>,
}

/// An entry of a dead-letter stream that cannot be read as a dead letter.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct UndecodableDeadLetter {
    /// Its id in the dead-letter stream.
    pub id: String,
    /// Why it cannot be read (the field it lacks or cannot parse).
    pub reason: String,
}

/// Most entries `dead_letters` reads in one round trip while it pages past
/// entries it cannot read.
pub(crate) const MAX_DEAD_LETTER_PAGE: usize = 1_000;

impl Inner {
    pub(crate) async fn dead_letter_page(
        &self,
        topic: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<DeadLetterPage, BackendError> {
        let start = match after {
            None => "-".to_owned(),
            Some(id) if codec::is_stream_id(id) => format!("({id}"),
            Some(_) => {
                return Err(BackendError::command(
                    "`after` is no dead-letter id (<ms>-<seq>)",
                ));
            }
        };
        let mut page = DeadLetterPage {
            dead_letters: Vec::new(),
            undecodable: Vec::new(),
            next: None,
        };
        if limit == 0 {
            page.next = after.map(str::to_owned);
            return Ok(page);
        }
        let keys = self.keys.topic(topic);
        let reply: Value = redis::cmd("XRANGE")
            .arg(&keys.dead)
            .arg(start)
            .arg("+")
            .arg("COUNT")
            .arg(limit)
            .query_async(&mut self.connection())
            .await
            .map_err(backend_error)?;
        let entries = codec::entries(reply);
        if entries.len() >= limit {
            page.next = entries.last().map(|(id, _)| id.clone());
        }
        for (id, fields) in entries {
            match codec::decode_dead_letter(&id, &fields) {
                Ok(dead) => page.dead_letters.push(dead),
                Err(reason) => page.undecodable.push(UndecodableDeadLetter { id, reason }),
            }
        }
        Ok(page)
    }

    pub(crate) async fn dead_letter_as(
        &self,
        receipt: &Receipt,
        message: &Message,
        error: &str,
        attempts: u32,
    ) -> Result<Settlement, BackendError> {
        let json = codec::encode(message)?;
        let done = self
            .dead_letter_entry(
                receipt.topic(),
                receipt.group(),
                &receipt.consumer.consumer,
                &receipt.entry_id,
                i64::from(receipt.delivery_count),
                &json,
                error,
                attempts,
            )
            .await?;
        Ok(settlement(receipt, "dead-letter", done))
    }

    /// Runs `lua/dead_letter.lua`: acknowledges the entry and appends `json` to
    /// the dead-letter stream if `consumer` still holds it with exactly
    /// `delivery_count` deliveries (as Redis counts them, which may be past a
    /// [`Receipt`]'s range). True when done.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn dead_letter_entry(
        &self,
        topic: &str,
        group: &str,
        consumer: &str,
        entry_id: &str,
        delivery_count: i64,
        json: &[u8],
        error: &str,
        attempts: u32,
    ) -> Result<bool, BackendError> {
        let keys = self.keys.topic(topic);
        let done: i64 = SCRIPTS
            .dead_letter
            .key(&keys.stream)
            .key(&keys.dead)
            .arg(group)
            .arg(consumer)
            .arg(entry_id)
            .arg(delivery_count)
            .arg(json)
            .arg(error)
            .arg(attempts)
            .invoke_async(&mut self.connection())
            .await
            .map_err(backend_error)?;
        if done == 1 {
            self.touched(topic);
        }
        Ok(done == 1)
    }
}
