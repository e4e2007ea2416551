//! Inbox events: [`InboxEvents`] fans the notifications recorded by any
//! process out to the open event streams of their user, and `GET /v1/me/events`
//! serves one user's stream as Server-Sent Events.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex, PoisonError};

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::{Stream, StreamExt};
use messaging_model::Notification;
use notification_store_postgres::{InboxChange, InboxListener, InboxReader, RecordedNotification};
use tokio::sync::broadcast;
use uuid::Uuid;

use crate::auth::CurrentUser;
use crate::inbox::{InboxNotification, UnreadCount};
use crate::{ApiError, AppState};

/// Signals buffered per user before a slow stream lags (and resynchronises).
const PER_USER_BUFFER: usize = 64;

/// Most changes [`InboxEvents::follow`] reads for its users in one statement.
const FOLLOW_BATCH: usize = 1024;

/// What one user's streams are told.
#[derive(Debug, Clone, PartialEq)]
enum InboxSignal {
    /// This notification was recorded for the user: each stream reads it.
    Recorded(Uuid),
    /// This notification was recorded for the user, read already with the
    /// user's unread count (once for every stream of a batch of changes).
    Read(Arc<RecordedNotification>),
    /// This notification was recorded for the user, as its announcement
    /// carried it; an [`InboxSignal::Unread`] follows.
    Carried(Arc<Notification>),
    /// The user's unread count, read after the notifications sent before it.
    Unread(u64),
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
            InboxChange::Recorded { user_id, id, .. } => {
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
        // One task listens and queues what it hears; the other reads what
        // is queued for the users listening, everything queued at a time in
        // one statement, so the batches grow while a read is in flight.
        let reader = listener.reader();
        let (queue, mut queued) = tokio::sync::mpsc::unbounded_channel::<InboxChange>();
        let listening = async move {
            let mut failing = false;
            loop {
                match listener.recv_batch(FOLLOW_BATCH).await {
                    Ok(changes) => {
                        if std::mem::take(&mut failing)
                            && queue.send(InboxChange::Reconnected).is_err()
                        {
                            return;
                        }
                        for change in changes {
                            if queue.send(change).is_err() {
                                return;
                            }
                        }
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
        };
        let delivering = async {
            while let Some(first) = queued.recv().await {
                let mut changes = vec![first];
                while changes.len() < FOLLOW_BATCH {
                    match queued.try_recv() {
                        Ok(change) => changes.push(change),
                        Err(_) => break,
                    }
                }
                self.deliver(&reader, changes).await;
            }
        };
        futures::future::join(listening, delivering).await;
    }

    /// Hands a batch of changes to the streams of their users. A
    /// notification its announcement carried goes to its user's streams at
    /// once, followed by the user's unread count once the counts of the batch
    /// are read (one statement). The others, of the users with an open
    /// stream, are read in one statement with their unread counts, then sent
    /// to every stream of their user (instead of each stream reading its
    /// own: 2,000 queries for 1,000 users notified at once). When a read
    /// fails, those users' streams read the state afresh.
    async fn deliver(&self, reader: &InboxReader, changes: Vec<InboxChange>) {
        let mut wanted = Vec::new();
        let mut counted: Vec<String> = Vec::new();
        for change in changes {
            match change {
                InboxChange::Recorded {
                    user_id,
                    id,
                    notification,
                } => {
                    if !self.is_listening(&user_id) {
                        continue;
                    }
                    match notification {
                        Some(notification) => {
                            self.send(&user_id, InboxSignal::Carried(Arc::from(notification)));
                            counted.push(user_id);
                        }
                        None => wanted.push((user_id, id)),
                    }
                }
                other => self.dispatch(&other),
            }
        }
        // One count per user, however many of their notifications the batch held.
        counted.sort_unstable();
        counted.dedup();
        futures::future::join(self.count(reader, counted), self.read(reader, wanted)).await;
    }

    /// Sends each of `users` their unread count.
    async fn count(&self, reader: &InboxReader, users: Vec<String>) {
        if users.is_empty() {
            return;
        }
        match reader.unread_counts(&users).await {
            Ok(counts) => {
                for (user_id, unread) in counts {
                    self.send(&user_id, InboxSignal::Unread(unread));
                }
            }
            Err(error) => {
                tracing::warn!(%error, "cannot read unread counts for the event streams; they resynchronise");
                for user_id in users {
                    self.send(&user_id, InboxSignal::Resync);
                }
            }
        }
    }

    /// Reads the notifications `wanted` names and sends each to its user.
    async fn read(&self, reader: &InboxReader, wanted: Vec<(String, Uuid)>) {
        if wanted.is_empty() {
            return;
        }
        let ids: Vec<Uuid> = wanted.iter().map(|(_, id)| *id).collect();
        match reader.recorded(&ids).await {
            Ok(recorded) => {
                for read in recorded {
                    let user_id = read.notification.user_id.clone();
                    self.send(&user_id, InboxSignal::Read(Arc::new(read)));
                }
            }
            Err(error) => {
                tracing::warn!(%error, "cannot read recorded notifications for the event streams; they resynchronise");
                for (user_id, _) in wanted {
                    self.send(&user_id, InboxSignal::Resync);
                }
            }
        }
    }

    fn is_listening(&self, user_id: &str) -> bool {
        self.users
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains_key(user_id)
    }

    fn send(&self, user_id: &str, signal: InboxSignal) {
        let mut users = self.users.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(sender) = users.get(user_id)
            && sender.send(signal).is_err()
        {
            users.remove(user_id);
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
                Ok(InboxSignal::Read(read)) => read_events(&read),
                Ok(InboxSignal::Carried(notification)) => vec![notification_event(&notification)],
                Ok(InboxSignal::Unread(unread)) => {
                    vec![json_event("unread", &UnreadCount { unread })]
                }
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

/// `notification` and `unread` for a notification read already.
fn read_events(read: &RecordedNotification) -> Vec<Event> {
    vec![
        notification_event(&read.notification),
        json_event(
            "unread",
            &UnreadCount {
                unread: read.unread,
            },
        ),
    ]
}

/// `notification`, the notification's id as the event id.
fn notification_event(notification: &Notification) -> Event {
    json_event(
        "notification",
        &InboxNotification::from(notification.clone()),
    )
    .id(notification.id.to_string())
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
