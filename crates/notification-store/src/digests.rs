//! Digest windows: the events of one (user, digest key) collected until a
//! digest is sent for them, and the [`DigestStore`] that keeps them.
//!
//! A window opens with its first event (so there is never an empty one), takes
//! every later event of its (user, key) until it is closed, and is closed once:
//! the next event opens a new window. Sending one digest per window is the
//! caller's part (the `notification` crate sends under the key
//! `digest:<window id>`).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::StoreError;

/// What [`DigestStore::append_digest_event`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DigestAppend {
    /// The window the event is in.
    pub window_id: Uuid,
    /// How many events the window holds now.
    pub count: u32,
    /// When the window opened.
    pub opened_at: DateTime<Utc>,
    /// This event opened the window (also when it is appended again): its
    /// caller arranges the window's timed close.
    pub opened_by_this_event: bool,
    /// The window was closed already (only for an event appended again).
    pub closed: bool,
}

impl DigestAppend {
    /// An answer (for stores outside this crate).
    pub fn new(
        window_id: Uuid,
        count: u32,
        opened_at: DateTime<Utc>,
        opened_by_this_event: bool,
        closed: bool,
    ) -> Self {
        Self {
            window_id,
            count,
            opened_at,
            opened_by_this_event,
            closed,
        }
    }
}

/// A window and its events.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct DigestWindow {
    /// Its id.
    pub id: Uuid,
    /// The user.
    pub user_id: String,
    /// The digest key.
    pub digest_key: String,
    /// When its first event came.
    pub opened_at: DateTime<Utc>,
    /// When it was closed.
    pub closed_at: Option<DateTime<Utc>>,
    /// Its events, in the order they were appended.
    pub events: Vec<Value>,
}

impl DigestWindow {
    /// A window (for stores outside this crate).
    pub fn new(
        id: Uuid,
        user_id: String,
        digest_key: String,
        opened_at: DateTime<Utc>,
        closed_at: Option<DateTime<Utc>>,
        events: Vec<Value>,
    ) -> Self {
        Self {
            id,
            user_id,
            digest_key,
            opened_at,
            closed_at,
            events,
        }
    }
}

/// Where digest windows are kept.
#[async_trait]
pub trait DigestStore: Send + Sync + 'static {
    /// Appends `event` (identified by `event_id`, unique per user and key) to
    /// the open window of (`user_id`, `digest_key`), opening one at `at` when
    /// there is none. An open window already holding `max_events` events is
    /// closed (at `at`) and a new one opened, so no window holds more. Appending
    /// an event again changes nothing and answers as the first time did (with
    /// the window's current count).
    async fn append_digest_event(
        &self,
        user_id: &str,
        digest_key: &str,
        event_id: &str,
        event: &Value,
        max_events: u32,
        at: DateTime<Utc>,
    ) -> Result<DigestAppend, StoreError>;

    /// Closes one of the user's windows (the first close sets `closed_at`;
    /// later ones change nothing) and returns it with its events. `None` for an
    /// unknown window or another user's.
    async fn close_digest(
        &self,
        user_id: &str,
        window_id: Uuid,
        at: DateTime<Utc>,
    ) -> Result<Option<DigestWindow>, StoreError>;
}
