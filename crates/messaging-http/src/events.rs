//! Inbox events: [`InboxEvents`] fans the notifications recorded by any
//! process out to the open event streams of their user, and `GET /v1/me/events`
//! serves one user's stream as Server-Sent Events.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex, PoisonError};

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::{Stream, StreamExt};
use notification_store_postgres::{InboxChange, InboxListener};
use tokio::sync::broadcast;
use uuid::Uuid;

use crate::auth::CurrentUser;
use crate::inbox::{InboxNotification, UnreadCount};
use crate::{ApiError, AppState};

/// Signals buffered per user before a slow stream lags (and resynchronises).
const PER_USER_BUFFER: usize = 64;

/// What one user's streams are told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum InboxSignal {
    /// This notification was recorded for the user.
    Recorded(Uuid),
    /// Changes may have been missed: read the state afresh.
    Resync,
}

/// The fan-out of inbox changes to event streams, per user: each user with an
/// open stream has a broadcast channel, removed when their last stream closes.
/// Cheap to clone (one `Arc`).
#[derive(Debug, Clone, Default)]
pub struct InboxEvents {
    users: Arc<Mutex<HashMap<String, broadcast::Sender<InboxSignal>>>>,
}

impl InboxEvents {
    /// No streams yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Passes one change to the streams it concerns: a recorded notification
    /// to its user's, a reconnection to every stream.
    pub fn dispatch(&self, change: &InboxChange) {
        let mut users = self.users.lock().unwrap_or_else(PoisonError::into_inner);
        match change {
            InboxChange::Recorded { user_id, id } => {
                if let Some(sender) = users.get(user_id)
                    && sender.send(InboxSignal::Recorded(*id)).is_err()
                {
                    users.remove(user_id);
                }
            }
            InboxChange::Reconnected => {
                users.retain(|_, sender| sender.send(InboxSignal::Resync).is_ok());
            }
            _ => {}
        }
    }

    /// How many users have an open stream.
    pub fn users_listening(&self) -> usize {
        self.users
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// Dispatches what `listener` hears until it fails for good; run it on a
    /// task of its own. A failed `recv` (the database away) is retried every
    /// second, and the streams are told to resynchronise once it is back.
    pub async fn follow(self, mut listener: InboxListener) {
        let mut failing = false;
        loop {
            match listener.recv().await {
                Ok(change) => {
                    if std::mem::take(&mut failing) {
                        self.dispatch(&InboxChange::Reconnected);
                    }
                    self.dispatch(&change);
                }
                Err(error) => {
                    if !failing {
                        tracing::warn!(%error, "inbox listener lost PostgreSQL; retrying");
                    }
                    failing = true;
                    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                }
            }
        }
    }

    fn subscribe(&self, user_id: &str) -> Subscription {
        let mut users = self.users.lock().unwrap_or_else(PoisonError::into_inner);
        let receiver = match users.get(user_id) {
            Some(sender) => sender.subscribe(),
            None => {
                let (sender, receiver) = broadcast::channel(PER_USER_BUFFER);
                users.insert(user_id.to_owned(), sender);
                receiver
            }
        };
        Subscription {
            receiver,
            _guard: SubscriptionGuard {
                events: self.clone(),
                user_id: user_id.to_owned(),
            },
        }
    }
}

/// One stream's receiver; the guard, dropped after it, removes the user's
/// channel when no stream is left.
struct Subscription {
    receiver: broadcast::Receiver<InboxSignal>,
    _guard: SubscriptionGuard,
}

struct SubscriptionGuard {
    events: InboxEvents,
    user_id: String,
}

impl Drop for SubscriptionGuard {
    fn drop(&mut self) {
        let mut users = self
            .events
            .users
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if users
            .get(&self.user_id)
            .is_some_and(|sender| sender.receiver_count() == 0)
        {
            users.remove(&self.user_id);
        }
    }
}

/// The user's events, as Server-Sent Events: at once an `unread` event with
/// the unread count, then for each new notification a `notification` event
/// (the notification, its id as the event id) and an `unread` event; keep-alive
/// comments while idle.
#[utoipa::path(
    get,
    path = "/v1/me/events",
    tag = "inbox",
    security(("user_token" = [])),
    responses(
        (status = 200, description = "An event stream: `unread` events `{\"unread\": n}` and `notification` events (an InboxNotification)", content_type = "text/event-stream", body = String),
        (status = 401, description = "No valid user token", body = crate::Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn events(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    // Subscribed before the first count is read: nothing recorded in between is missed.
    let subscription = state.events().subscribe(&user);
    let first = unread_event(&state, &user).await?;
    let keep_alive = state.config().keep_alive;
    let shutdown = state.shutdown_token().clone();
    let following = futures::stream::unfold(
        (subscription, state, user),
        |(mut subscription, state, user)| async move {
            let events = match subscription.receiver.recv().await {
                Ok(InboxSignal::Recorded(id)) => recorded_events(&state, &user, id).await,
                Ok(InboxSignal::Resync) | Err(broadcast::error::RecvError::Lagged(_)) => {
                    unread_event(&state, &user).await.ok().into_iter().collect()
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            };
            Some((events, (subscription, state, user)))
        },
    )
    .flat_map(futures::stream::iter);
    let stream = futures::stream::once(std::future::ready(first))
        .chain(following)
        .map(Ok)
        .take_until(shutdown.cancelled_owned());
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(keep_alive).text("keep-alive")))
}

/// `unread` with the user's count.
async fn unread_event(state: &AppState, user: &str) -> Result<Event, ApiError> {
    let unread = state.store().unread_count(user).await?;
    Ok(json_event("unread", &UnreadCount { unread }))
}

/// `notification` and `unread` for a notification just recorded; nothing when
/// it is gone already (deleted) or the store fails (logged).
async fn recorded_events(state: &AppState, user: &str, id: Uuid) -> Vec<Event> {
    match state.store().get_notification(user, id).await {
        Ok(notification) => {
            let mut events = vec![
                json_event("notification", &InboxNotification::from(notification))
                    .id(id.to_string()),
            ];
            events.extend(unread_event(state, user).await.ok());
            events
        }
        Err(error) if error.is_not_found() => Vec::new(),
        Err(error) => {
            tracing::warn!(%error, %id, "cannot read a recorded notification for its event stream");
            Vec::new()
        }
    }
}

fn json_event(name: &str, data: &impl serde::Serialize) -> Event {
    let data = serde_json::to_string(data).unwrap_or_else(|_| "{}".to_owned());
    Event::default().event(name).data(data)
}
