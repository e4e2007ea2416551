//! Digests: the events of one (user, digest key) collected over a window
//! (`max_age`, or `max_count` events, whichever comes first) into one email
//! rendered from a template with the list of events (`events`, and `count`).
//!
//! Exactly one digest per window, however many workers run and whichever dies:
//!
//! * a window is kept in a [`DigestStore`]: it opens with its first event
//!   (there is never an empty window, so an empty period sends nothing), each
//!   event joins it once (by message id), and it is closed once;
//! * the event that opens a window publishes a durable delayed flush message on
//!   [`DIGEST_TOPIC`] for `opened_at + max_age` (a redelivery of that event
//!   publishes again: harmless); the event that makes `max_count` flushes at once;
//! * a flush closes the window (again, after a crash) and sends the digest with
//!   [`NotificationService::execute_once`] under the key `digest:<window id>`:
//!   one notification row per window, sent once (the interrupted-send policy
//!   applies as to every send).
//!
//! The digest goes through the user's preferences like any notification.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;
use messaging_core::{HandlerError, MessageHandler, MessagingService, SubscribeOptions};
use messaging_model::Message;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::requests::{EmailRequest, NotificationAction, TemplateRef};
use crate::store::DigestStore;
use crate::{NotificationError, NotificationService};

/// The topic of digest flush messages.
pub const DIGEST_TOPIC: &str = "notification.digest";

/// One digest rule: the events of `topic` (payloads with `user_id` and `email`
/// or `to`) collected per user under `digest_key`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DigestRule {
    /// The topic whose events are collected.
    pub topic: String,
    /// The digest key (one window per user and key).
    pub digest_key: String,
    /// The email template of the digest: rendered with `events` (the payloads,
    /// in order) and `count`.
    pub template: String,
    /// The digest's category, for the preferences.
    pub category: Option<String>,
    /// A window is flushed when it holds this many events…
    pub max_count: u32,
    /// …or this long after its first event, whichever comes first.
    pub max_age: Duration,
}

impl DigestRule {
    /// Events of `topic` into digests from `template`, keyed `digest_key`,
    /// flushed after `max_age` or `max_count` events.
    pub fn new(
        topic: impl Into<String>,
        digest_key: impl Into<String>,
        template: impl Into<String>,
        max_count: u32,
        max_age: Duration,
    ) -> Self {
        Self {
            topic: topic.into(),
            digest_key: digest_key.into(),
            template: template.into(),
            category: None,
            max_count: max_count.max(1),
            max_age,
        }
    }

    /// Sets the digest's category.
    pub fn with_category(mut self, category: impl Into<String>) -> Self {
        self.category = Some(category.into());
        self
    }
}

/// The payload of a [`DIGEST_TOPIC`] message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct DigestFlush {
    /// The user.
    pub user_id: String,
    /// The rule's digest key.
    pub digest_key: String,
    /// The window.
    pub window_id: Uuid,
}

/// The digest rules with their store and the service they send through.
#[derive(Clone)]
pub struct Digests {
    service: Arc<NotificationService>,
    store: Arc<dyn DigestStore>,
    rules: Vec<DigestRule>,
    publisher: Arc<MessagingService>,
}

impl std::fmt::Debug for Digests {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Digests")
            .field("rules", &self.rules)
            .finish_non_exhaustive()
    }
}

fn invalid(topic: &str, reason: impl Into<String>) -> NotificationError {
    NotificationError::InvalidPayload {
        topic: topic.to_owned(),
        reason: reason.into(),
    }
}

impl Digests {
    /// `rules` over `store`, sending through `service`; flush messages are
    /// published on `messaging`'s backend.
    pub fn new(
        service: Arc<NotificationService>,
        store: Arc<dyn DigestStore>,
        rules: Vec<DigestRule>,
        messaging: &MessagingService,
    ) -> Self {
        Self {
            service,
            store,
            rules,
            publisher: Arc::new(MessagingService::new(messaging.backend().clone())),
        }
    }

    /// Subscribes every rule's topic and [`DIGEST_TOPIC`] with `options`.
    pub async fn listen(
        &self,
        messaging: &MessagingService,
        options: SubscribeOptions,
    ) -> Result<(), NotificationError> {
        let subscribe = |topic: String, handler: DigestHandler| {
            let options = options.clone();
            async move {
                messaging
                    .subscribe_with(&topic, options, handler)
                    .await
                    .map_err(|source| NotificationError::Subscribe { topic, source })
            }
        };
        for rule in &self.rules {
            subscribe(
                rule.topic.clone(),
                DigestHandler {
                    digests: self.clone(),
                    rule: Some(rule.clone()),
                },
            )
            .await?;
        }
        subscribe(
            DIGEST_TOPIC.to_owned(),
            DigestHandler {
                digests: self.clone(),
                rule: None,
            },
        )
        .await
    }

    /// Collects one event of `rule` (what its topic's handler does).
    pub async fn collect(
        &self,
        rule: &DigestRule,
        message: &Message,
    ) -> Result<(), NotificationError> {
        let topic = message.topic.to_string();
        let user_id = match &message.payload["user_id"] {
            Value::String(user) => user.clone(),
            Value::Number(user) => user.to_string(),
            _ => return Err(invalid(&topic, "user_id missing")),
        };
        if message.payload["email"].as_str().is_none() && message.payload["to"].as_str().is_none() {
            return Err(invalid(&topic, "email (or to) missing"));
        }
        let appended = self
            .store
            .append_digest_event(
                &user_id,
                &rule.digest_key,
                &message.id.to_string(),
                &message.payload,
                rule.max_count,
                Utc::now(),
            )
            .await?;
        if appended.opened_by_this_event && !appended.closed {
            let at = appended.opened_at
                + chrono::Duration::from_std(rule.max_age).unwrap_or(chrono::Duration::MAX);
            let flush = DigestFlush {
                user_id: user_id.clone(),
                digest_key: rule.digest_key.clone(),
                window_id: appended.window_id,
            };
            let payload = serde_json::to_value(&flush)
                .map_err(|error| invalid(DIGEST_TOPIC, error.to_string()))?;
            self.publisher
                .publish_at(DIGEST_TOPIC, payload, at)
                .await
                .map_err(|source| NotificationError::Defer { source })?;
        }
        if appended.count >= rule.max_count && !appended.closed {
            self.flush(&user_id, &rule.digest_key, appended.window_id)
                .await?;
        }
        Ok(())
    }

    /// Closes a window (again, if need be) and sends its digest once. `None`
    /// when there is nothing to send (an unknown window, or no rule for its key).
    pub async fn flush(
        &self,
        user_id: &str,
        digest_key: &str,
        window_id: Uuid,
    ) -> Result<Option<messaging_model::Notification>, NotificationError> {
        let Some(rule) = self.rules.iter().find(|rule| rule.digest_key == digest_key) else {
            tracing::warn!(digest_key, "a digest flush of an unknown key; nothing sent");
            return Ok(None);
        };
        let Some(window) = self
            .store
            .close_digest(user_id, window_id, Utc::now())
            .await?
        else {
            return Ok(None);
        };
        let Some(last) = window.events.last() else {
            return Ok(None);
        };
        let to = last["email"]
            .as_str()
            .or_else(|| last["to"].as_str())
            .unwrap_or_default()
            .to_owned();
        let count = window.events.len();
        let mut request = EmailRequest::template(
            user_id,
            &to,
            TemplateRef::new(&rule.template)
                .with_variable("events", Value::Array(window.events))
                .with_variable("count", count),
        )?;
        if let Some(category) = &rule.category {
            request = request.with_category(category);
        }
        let sent = self
            .service
            .execute_once(
                NotificationAction::Email(request),
                &format!("digest:{window_id}"),
            )
            .await?;
        Ok(Some(sent))
    }
}

/// A rule's topic (collect) or [`DIGEST_TOPIC`] (flush).
struct DigestHandler {
    digests: Digests,
    rule: Option<DigestRule>,
}

#[async_trait]
impl MessageHandler for DigestHandler {
    async fn handle(&self, message: Message) -> Result<(), HandlerError> {
        let outcome = match &self.rule {
            Some(rule) => self.digests.collect(rule, &message).await,
            None => match serde_json::from_value::<DigestFlush>(message.payload.clone()) {
                Ok(flush) => self
                    .digests
                    .flush(&flush.user_id, &flush.digest_key, flush.window_id)
                    .await
                    .map(|_| ()),
                Err(error) => Err(invalid(DIGEST_TOPIC, error.to_string())),
            },
        };
        outcome.map_err(NotificationError::into_handler_error)
    }
}
