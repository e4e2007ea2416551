use std::sync::Arc;

use chrono::Utc;
use futures::StreamExt;
use messaging_model::{
    AttemptOutcome, DeliveryAttempt, MessageTemplate, Notification, NotificationKind,
    NotificationStatus, TemplateKind,
};
use serde_json::{Value, json};
use tracing::{Instrument, error, info_span, warn};

use crate::channel::{
    EmailChannel, EmailMessage, PushChannel, PushMessage, SendReceipt, SmsChannel, SmsMessage,
};
use crate::requests::{
    BatchOutcome, Content, EmailBody, EmailRequest, NotificationAction, PushBody, PushRequest,
    SmsRequest, SystemNotificationRequest,
};
use crate::store::{
    InMemoryNotificationStore, InMemoryTemplateStore, NotificationStore, SuppressionStore,
    TemplateStore,
};
use crate::template::TemplateRenderer;
use crate::{InterruptedSendPolicy, NotificationConfig, NotificationError};

/// Sends notifications through its channels, renders templates, and records
/// every notification in the store.
///
/// Every send records a [`Notification`]: `pending` first, then `sent` (with
/// `sent_at`) or `failed` (with the error). Requests refused before anything is
/// sent (a missing template or variable, an empty subject) return the error
/// and record nothing; a bad address never gets this far, as requests parse
/// their recipient when they are built. A send with an idempotency key already used by the same
/// user is a no-op returning the first result: the recorded notification, or
/// [`NotificationError::PreviouslyFailed`] when the first send failed.
///
/// ```
/// use std::sync::Arc;
/// use messaging_model::NotificationStatus;
/// use notification::channel::{EmailMessage, RecordingChannel};
/// use notification::{EmailRequest, NotificationService};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), notification::NotificationError> {
/// let outbox = RecordingChannel::<EmailMessage>::new();
/// let service = NotificationService::in_memory().with_email(Arc::new(outbox.clone()));
/// let sent = service
///     .send_email(EmailRequest::new("user-1", "ann@example.com", "Hello", "Hi Ann")?)
///     .await?;
/// assert_eq!(sent.status, NotificationStatus::Sent);
/// assert_eq!(outbox.sent()[0].subject, "Hello");
/// # Ok(()) }
/// ```
pub struct NotificationService {
    notifications: Arc<dyn NotificationStore>,
    templates: Arc<dyn TemplateStore>,
    /// Templates read from the store, by (name, locale), with when.
    template_cache: std::sync::Mutex<TemplateCache>,
    renderer: TemplateRenderer,
    email: Option<Arc<dyn EmailChannel>>,
    sms: Option<Arc<dyn SmsChannel>>,
    push: Option<Arc<dyn PushChannel>>,
    /// The suppression list checked before each send, when set.
    suppressions: Option<Arc<dyn SuppressionStore>>,
    config: NotificationConfig,
    /// Preferences, quiet hours and unsubscribe links (`preferences.rs`).
    pub(crate) controls: crate::preferences::Controls,
}

impl std::fmt::Debug for NotificationService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NotificationService")
            .field("email", &self.email.is_some())
            .field("sms", &self.sms.is_some())
            .field("push", &self.push.is_some())
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl NotificationService {
    /// A service over these stores, with no channel yet.
    pub fn new(
        notifications: Arc<dyn NotificationStore>,
        templates: Arc<dyn TemplateStore>,
    ) -> Self {
        Self {
            notifications,
            templates,
            template_cache: std::sync::Mutex::default(),
            renderer: TemplateRenderer::new(),
            email: None,
            sms: None,
            push: None,
            suppressions: None,
            config: NotificationConfig::default(),
            controls: crate::preferences::Controls::default(),
        }
    }

    /// A service over new in-memory stores.
    pub fn in_memory() -> Self {
        Self::new(
            Arc::new(InMemoryNotificationStore::new()),
            Arc::new(InMemoryTemplateStore::new()),
        )
    }

    /// Sets the email channel.
    pub fn with_email(mut self, channel: Arc<dyn EmailChannel>) -> Self {
        self.email = Some(channel);
        self
    }

    /// Sets the SMS channel.
    pub fn with_sms(mut self, channel: Arc<dyn SmsChannel>) -> Self {
        self.sms = Some(channel);
        self
    }

    /// Sets the push channel.
    pub fn with_push(mut self, channel: Arc<dyn PushChannel>) -> Self {
        self.push = Some(channel);
        self
    }

    /// Sets the suppression list: a send to an address suppressed for its
    /// channel is recorded `suppressed` (with the suppression's reason as its
    /// error) and handed to no provider.
    pub fn with_suppressions(mut self, suppressions: Arc<dyn SuppressionStore>) -> Self {
        self.suppressions = Some(suppressions);
        self
    }

    /// The suppression list, when set.
    pub fn suppressions(&self) -> Option<&Arc<dyn SuppressionStore>> {
        self.suppressions.as_ref()
    }

    /// Sets the configuration.
    pub fn with_config(mut self, config: NotificationConfig) -> Self {
        self.config = config;
        self
    }

    /// The notification store.
    pub fn notifications(&self) -> &Arc<dyn NotificationStore> {
        &self.notifications
    }

    /// The template store.
    pub fn templates(&self) -> &Arc<dyn TemplateStore> {
        &self.templates
    }

    /// The template renderer (and its cache).
    pub fn renderer(&self) -> &TemplateRenderer {
        &self.renderer
    }

    /// The configuration.
    pub fn config(&self) -> &NotificationConfig {
        &self.config
    }

    // ---- templates ---------------------------------------------------------

    /// Checks a template (syntax, the parts its channel needs, declared versus
    /// used variables) and stores it, replacing the one with the same name and
    /// locale. The compiled cache entry is dropped.
    pub async fn create_template(
        &self,
        template: MessageTemplate,
    ) -> Result<MessageTemplate, NotificationError> {
        self.renderer.check(&template)?;
        let stored = self.templates.save(&template).await?;
        self.renderer
            .invalidate(&stored.name, stored.locale.as_deref());
        self.forget_template(&stored.name);
        Ok(stored)
    }

    /// Same as [`create_template`](Self::create_template): saving replaces.
    pub async fn update_template(
        &self,
        template: MessageTemplate,
    ) -> Result<MessageTemplate, NotificationError> {
        self.create_template(template).await
    }

    /// Marks a template inactive: sends using it are refused from now on.
    pub async fn deactivate_template(
        &self,
        name: &str,
        locale: Option<&str>,
    ) -> Result<(), NotificationError> {
        self.templates
            .deactivate(name, locale)
            .await
            .map_err(|error| {
                if error.is_not_found() {
                    NotificationError::TemplateNotFound {
                        name: name.to_owned(),
                        locale: locale.map(str::to_owned),
                    }
                } else {
                    error.into()
                }
            })?;
        self.renderer.invalidate(name, locale);
        self.forget_template(name);
        Ok(())
    }

    /// Stores each template that is not stored yet (by name and locale); returns
    /// how many were added. Existing templates are never overwritten.
    pub async fn install_templates(
        &self,
        templates: Vec<MessageTemplate>,
    ) -> Result<usize, NotificationError> {
        let mut added = 0;
        for template in templates {
            if self
                .templates
                .get_template(&template.name, template.locale.as_deref())
                .await?
                .is_none()
            {
                self.create_template(template).await?;
                added += 1;
            }
        }
        Ok(added)
    }

    /// Installs the templates of the default event rules
    /// ([`crate::events::default_templates`]) that are missing.
    pub async fn install_default_templates(&self) -> Result<usize, NotificationError> {
        self.install_templates(crate::events::default_templates())
            .await
    }

    /// The template to use for `name` in `locale`: the exact locale, then its
    /// language (`pt` for `pt-BR`), then the default variant (`None`). Refused
    /// when inactive or of another kind.
    pub async fn resolve_template(
        &self,
        name: &str,
        locale: Option<&str>,
        kind: TemplateKind,
    ) -> Result<MessageTemplate, NotificationError> {
        let mut candidates: Vec<Option<&str>> = Vec::with_capacity(3);
        if let Some(locale) = locale {
            candidates.push(Some(locale));
            if let Some((language, _)) = locale.split_once('-') {
                candidates.push(Some(language));
            }
        }
        candidates.push(None);
        for candidate in candidates {
            if let Some(template) = self.stored_template(name, candidate).await? {
                if !template.is_active {
                    return Err(NotificationError::TemplateInactive {
                        name: name.to_owned(),
                        locale: template.locale,
                    });
                }
                if template.kind != kind {
                    return Err(NotificationError::TemplateKindMismatch {
                        name: name.to_owned(),
                        expected: kind,
                        found: template.kind,
                    });
                }
                return Ok(template);
            }
        }
        Err(NotificationError::TemplateNotFound {
            name: name.to_owned(),
            locale: locale.map(str::to_owned),
        })
    }

    /// The stored template of this name and locale, through the cache.
    async fn stored_template(
        &self,
        name: &str,
        locale: Option<&str>,
    ) -> Result<Option<MessageTemplate>, NotificationError> {
        let ttl = self.config.template_cache_ttl;
        let key = (name.to_owned(), locale.map(str::to_owned));
        if !ttl.is_zero()
            && let Some((read_at, template)) = self.template_cache_lock().get(&key)
            && read_at.elapsed() < ttl
        {
            return Ok(template.clone());
        }
        let template = self.templates.get_template(name, locale).await?;
        if !ttl.is_zero() {
            let mut cache = self.template_cache_lock();
            if cache.len() >= TEMPLATE_CACHE_LIMIT {
                cache.clear();
            }
            cache.insert(key, (std::time::Instant::now(), template.clone()));
        }
        Ok(template)
    }

    fn template_cache_lock(&self) -> std::sync::MutexGuard<'_, TemplateCache> {
        self.template_cache
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Drops every cached variant of `name` (after this service changed it).
    fn forget_template(&self, name: &str) {
        self.template_cache_lock()
            .retain(|(cached, _), _| cached != name);
    }

    // ---- sending ---------------------------------------------------------------

    /// Sends one notification of any channel: every `send_*` method and
    /// [`execute`](Self::execute) is this one path.
    pub async fn send(
        &self,
        request: impl Into<NotificationAction>,
    ) -> Result<Notification, NotificationError> {
        self.execute_as(request.into(), OnExisting::Replay).await
    }

    /// Sends an email: with the subject and body given, or rendered from a
    /// stored email template, as its [`content`](EmailRequest::content) says.
    pub async fn send_email(
        &self,
        request: EmailRequest,
    ) -> Result<Notification, NotificationError> {
        self.send(request).await
    }

    /// The same as [`send_email`](Self::send_email), by the name of the
    /// templated form ([`EmailRequest::template`]).
    pub async fn send_email_with_template(
        &self,
        request: EmailRequest,
    ) -> Result<Notification, NotificationError> {
        self.send(request).await
    }

    /// Sends a text message, given or rendered from a stored SMS template.
    pub async fn send_sms(&self, request: SmsRequest) -> Result<Notification, NotificationError> {
        self.send(request).await
    }

    /// The same as [`send_sms`](Self::send_sms), by the name of the templated
    /// form ([`SmsRequest::template`]).
    pub async fn send_sms_with_template(
        &self,
        request: SmsRequest,
    ) -> Result<Notification, NotificationError> {
        self.send(request).await
    }

    /// Sends a push notification, given or rendered from a stored push
    /// template (subject: title, content: body).
    pub async fn send_push(&self, request: PushRequest) -> Result<Notification, NotificationError> {
        self.send(request).await
    }

    /// The same as [`send_push`](Self::send_push), by the name of the
    /// templated form ([`PushRequest::template`]).
    pub async fn send_push_with_template(
        &self,
        request: PushRequest,
    ) -> Result<Notification, NotificationError> {
        self.send(request).await
    }

    /// Records an in-app notification: it is `sent` as soon as it is stored.
    pub async fn send_system_notification(
        &self,
        request: SystemNotificationRequest,
    ) -> Result<Notification, NotificationError> {
        self.send(request).await
    }

    /// Sends each request of the batch, at most
    /// [`NotificationConfig::batch_concurrency`] at once; one outcome per
    /// request, in order. A failure never stops the others.
    pub async fn send_batch<R: Into<NotificationAction>>(
        &self,
        requests: Vec<R>,
    ) -> Vec<BatchOutcome> {
        let concurrency = self.config.batch_concurrency.max(1);
        let span = info_span!("notification_batch", count = requests.len(), concurrency);
        futures::stream::iter(requests.into_iter().enumerate())
            .map(|(index, request)| {
                let action = request.into();
                let recipient = action.recipient().to_owned();
                let sending = self.send(action);
                async move {
                    BatchOutcome {
                        index,
                        recipient,
                        result: sending.await,
                    }
                }
            })
            .buffered(concurrency)
            .collect()
            .instrument(span)
            .await
    }

    /// [`send_batch`](Self::send_batch) of emails.
    pub async fn send_batch_email(&self, requests: Vec<EmailRequest>) -> Vec<BatchOutcome> {
        self.send_batch(requests).await
    }

    /// [`send_batch`](Self::send_batch) of emails, by the name of the
    /// templated form.
    pub async fn send_batch_email_with_template(
        &self,
        requests: Vec<EmailRequest>,
    ) -> Vec<BatchOutcome> {
        self.send_batch(requests).await
    }

    /// [`send_batch`](Self::send_batch) of text messages.
    pub async fn send_batch_sms(&self, requests: Vec<SmsRequest>) -> Vec<BatchOutcome> {
        self.send_batch(requests).await
    }

    // ---- actions (event rules) -------------------------------------------------------

    /// Runs one action of an event rule: the same as [`send`](Self::send).
    pub async fn execute(
        &self,
        action: NotificationAction,
    ) -> Result<Notification, NotificationError> {
        self.send(action).await
    }

    /// Runs an action at most once successfully per `key`, however often it is
    /// asked, on **one** inbox row, whose status says how far the send got:
    ///
    /// - `sent` (or `unknown`, see below): returned as is, nothing is sent;
    /// - `pending` or `failed` (never handed to the provider, or refused by it):
    ///   sent again on that row;
    /// - `sending`: an earlier send was interrupted (its process died) after it
    ///   may have reached the provider. An `unknown` attempt is logged and the
    ///   channel's [`InterruptedSendPolicy`](crate::InterruptedSendPolicy) decides: `resend` sends
    ///   again on that row (the one case that can duplicate a message), and
    ///   `mark_unknown` leaves the row `unknown` and sends nothing.
    ///
    /// Every attempt is logged ([`NotificationStore::list_attempts`]). A
    /// redelivered, retried or replayed event never adds a row.
    pub async fn execute_once(
        &self,
        action: NotificationAction,
        key: &str,
    ) -> Result<Notification, NotificationError> {
        self.execute_as(
            action.with_idempotency_key(key.to_owned()),
            OnExisting::Resume,
        )
        .await
    }

    /// [`execute_once`](Self::execute_once) of an action that already waited
    /// out the user's quiet hours (it comes back from its delayed message): a
    /// `scheduled` row under `key` is sent now, and the quiet hours are not
    /// applied again (so it is never held for ever). Opt-outs are checked again.
    pub async fn execute_released(
        &self,
        action: NotificationAction,
        key: &str,
    ) -> Result<Notification, NotificationError> {
        self.execute_as(
            action.with_idempotency_key(key.to_owned()),
            OnExisting::Release,
        )
        .await
    }

    async fn execute_as(
        &self,
        action: NotificationAction,
        on_existing: OnExisting,
    ) -> Result<Notification, NotificationError> {
        let idempotency_key = action.idempotency_key().map(str::to_owned);
        let own_category = action.category().map(str::to_owned);
        let (mut notification, mut outgoing) = self.prepare(action).await?;
        notification.idempotency_key = idempotency_key;
        if let Some(suppression) = self.suppression_of(outgoing.as_ref()).await? {
            // Recorded, never silently dropped: the row says why nothing went out.
            warn!(
                kind = notification.kind.as_str(),
                reason = suppression.reason.as_str(),
                "recipient suppressed; not sent"
            );
            notification.status = NotificationStatus::Suppressed;
            notification.error = Some(suppressed_error(&suppression));
            return self.suppress(notification, outgoing, on_existing).await;
        }
        let category = self.categorise(&mut notification, own_category);
        let released = on_existing == OnExisting::Release;
        match self
            .decide(&notification, category.as_deref(), released)
            .await?
        {
            crate::preferences::Decision::Skip { reason } => {
                notification.status = NotificationStatus::Skipped;
                notification.error = Some(reason);
                self.hold(notification, on_existing).await
            }
            crate::preferences::Decision::Defer { at } => {
                notification.status = NotificationStatus::Scheduled;
                if let Value::Object(map) = &mut notification.metadata {
                    map.insert("scheduled_for".to_owned(), json!(at));
                }
                self.hold(notification, on_existing).await
            }
            _ => {
                if let Some(Outgoing::Email(_, email)) = &mut outgoing {
                    self.add_unsubscribe_links(email, &notification.user_id, category.as_deref())
                        .await?;
                }
                self.deliver(notification, outgoing, on_existing).await
            }
        }
    }

    /// Records a notification the preferences keep from being sent now
    /// (`skipped` or `scheduled`). A row already under its key is the answer
    /// instead (a redelivery).
    async fn hold(
        &self,
        notification: Notification,
        on_existing: OnExisting,
    ) -> Result<Notification, NotificationError> {
        check_user(&notification.user_id)?;
        tracing::info!(
            notification_id = %notification.id,
            user_id = %notification.user_id,
            status = notification.status.as_str(),
            reason = notification.error.as_deref().unwrap_or(""),
            "notification held by the user's preferences"
        );
        let Some(existing) = self.record_or_existing(&notification).await? else {
            return Ok(notification);
        };
        match on_existing {
            OnExisting::Replay => replay(existing),
            // Due after its quiet hours, but opted out meanwhile: skipped now
            // (unless another process already moved it on).
            OnExisting::Release
                if existing.status == NotificationStatus::Scheduled
                    && notification.status == NotificationStatus::Skipped =>
            {
                let reason = notification.error.clone().unwrap_or_default();
                match self
                    .notifications
                    .update_status(existing.id, crate::store::StatusUpdate::Skipped { reason })
                    .await
                {
                    Ok(skipped) => Ok(skipped),
                    Err(conflict) if conflict.is_conflict() => self.current(&existing).await,
                    Err(error) => Err(error.into()),
                }
            }
            OnExisting::Resume | OnExisting::Release => Ok(existing),
        }
    }

    /// Records `notification`: `None` when it was recorded, or the row an
    /// earlier delivery recorded under its idempotency key (the insert finds
    /// a used key by its conflict, so a first record makes no lookup). A
    /// conflict without a key, or whose row is gone, is the conflict.
    async fn record_or_existing(
        &self,
        notification: &Notification,
    ) -> Result<Option<Notification>, NotificationError> {
        let conflict = match self.notifications.record(notification).await {
            Ok(()) => return Ok(None),
            Err(conflict) if conflict.is_conflict() => conflict,
            Err(error) => return Err(error.into()),
        };
        let Some(key) = notification.idempotency_key.as_deref() else {
            return Err(conflict.into());
        };
        match self
            .notifications
            .find_by_idempotency_key(&notification.user_id, key)
            .await?
        {
            Some(existing) => Ok(Some(existing)),
            None => Err(conflict.into()),
        }
    }

    /// Records a notification whose recipient is suppressed, without sending
    /// it. A row already under its key (a redelivered event) is moved to
    /// `suppressed` when it was never handed over or was refused (`pending`,
    /// `scheduled`, `failed`); one left `sending` by an interrupted send gets
    /// that attempt logged `unknown` (it is not sent again); any other is the
    /// answer as it is.
    async fn suppress(
        &self,
        notification: Notification,
        outgoing: Option<Outgoing>,
        on_existing: OnExisting,
    ) -> Result<Notification, NotificationError> {
        check_user(&notification.user_id)?;
        let Some(existing) = self.record_or_existing(&notification).await? else {
            return Ok(notification);
        };
        if on_existing == OnExisting::Replay {
            return replay(existing);
        }
        let reason = notification.error.unwrap_or_default();
        match existing.status {
            NotificationStatus::Pending
            | NotificationStatus::Scheduled
            | NotificationStatus::Failed => {
                match self
                    .notifications
                    .update_status(
                        existing.id,
                        crate::store::StatusUpdate::Suppressed { reason },
                    )
                    .await
                {
                    Ok(suppressed) => {
                        tracing::info!(
                            notification_id = %suppressed.id,
                            was = existing.status.as_str(),
                            "redelivered notification to a suppressed recipient marked suppressed"
                        );
                        Ok(suppressed)
                    }
                    // Another process moved it on meanwhile: its outcome.
                    Err(conflict) if conflict.is_conflict() => self.current(&existing).await,
                    Err(error) => Err(error.into()),
                }
            }
            NotificationStatus::Sending => {
                let provider = outgoing
                    .as_ref()
                    .map(Outgoing::provider)
                    .unwrap_or_default();
                let interrupted = DeliveryAttempt::new(
                    &existing,
                    existing.attempts,
                    provider,
                    AttemptOutcome::Unknown,
                )
                .with_started_at(existing.last_attempt_at.unwrap_or(existing.created_at))
                .with_error(INTERRUPTED);
                warn!(
                    attempt = existing.attempts,
                    "an interrupted send may or may not have arrived; its recipient is suppressed now, so it is marked unknown, not sent again"
                );
                Ok(self.notifications.record_attempt(&interrupted).await?)
            }
            _ => Ok(existing),
        }
    }

    /// The suppression in force for the recipient of `outgoing`, if a
    /// suppression list is set.
    async fn suppression_of(
        &self,
        outgoing: Option<&Outgoing>,
    ) -> Result<Option<crate::store::Suppression>, NotificationError> {
        let (Some(suppressions), Some(outgoing)) = (&self.suppressions, outgoing) else {
            return Ok(None);
        };
        let (kind, address) = outgoing.recipient();
        Ok(suppressions.find_suppression(kind, address).await?)
    }

    /// The notification to record for `action` and the message to hand to its
    /// channel (none for an in-app notification), checked: the one check of a
    /// message, as channels do not check again.
    async fn prepare(
        &self,
        action: NotificationAction,
    ) -> Result<(Notification, Option<Outgoing>), NotificationError> {
        match action {
            NotificationAction::Email(request) => {
                let channel = self.email_channel()?;
                let mut metadata = json!({"to": request.to.address()});
                let parts = self
                    .compose(request.content, TemplateKind::Email, &mut metadata)
                    .await?;
                let mut email = EmailMessage::new(request.to, parts.subject.unwrap_or_default());
                email.text = parts.text;
                email.html = parts.html;
                email.check()?;
                let content = email
                    .text
                    .as_deref()
                    .or(email.html.as_deref())
                    .unwrap_or_default();
                let notification = Notification::new(
                    &request.user_id,
                    NotificationKind::Email,
                    &email.subject,
                    content,
                )
                .with_metadata(metadata);
                Ok((notification, Some(Outgoing::Email(channel, email))))
            }
            NotificationAction::Sms(request) => {
                let channel = self.sms_channel()?;
                let mut metadata = json!({"to": request.to.as_str()});
                let parts = self
                    .compose(request.content, TemplateKind::Sms, &mut metadata)
                    .await?;
                let sms = SmsMessage::new(request.to, parts.text.unwrap_or_default());
                sms.check()?;
                let notification =
                    Notification::new(&request.user_id, NotificationKind::Sms, "SMS", &sms.text)
                        .with_metadata(metadata);
                Ok((notification, Some(Outgoing::Sms(channel, sms))))
            }
            NotificationAction::Push(request) => {
                let channel = self.push_channel()?;
                let mut metadata = json!({});
                let parts = self
                    .compose(request.content, TemplateKind::Push, &mut metadata)
                    .await?;
                let mut push = PushMessage::new(
                    request.to,
                    parts.subject.unwrap_or_default(),
                    parts.text.unwrap_or_default(),
                );
                push.data = request.extra;
                push.check()?;
                if let Value::Object(map) = &mut metadata
                    && !push.data.is_empty()
                {
                    map.insert("data".to_owned(), json!(push.data));
                }
                let notification = Notification::new(
                    &request.user_id,
                    NotificationKind::Push,
                    &push.title,
                    &push.body,
                )
                .with_metadata(metadata);
                Ok((notification, Some(Outgoing::Push(channel, push))))
            }
            NotificationAction::System(request) => {
                check_user(&request.user_id)?;
                if request.title.trim().is_empty() && request.content.trim().is_empty() {
                    return Err(NotificationError::invalid_request(
                        "a system notification needs a title or a content",
                    ));
                }
                let mut notification = Notification::new(
                    &request.user_id,
                    NotificationKind::System,
                    request.title,
                    request.content,
                );
                if !request.metadata.is_null() {
                    notification.metadata = request.metadata;
                }
                notification.status = NotificationStatus::Sent;
                notification.sent_at = Some(notification.created_at);
                Ok((notification, None))
            }
        }
    }

    /// The subject and bodies of `content`: as given, or rendered from its
    /// template (whose name and locale then go into `metadata`).
    async fn compose<C: Into<Parts>>(
        &self,
        content: Content<C>,
        kind: TemplateKind,
        metadata: &mut Value,
    ) -> Result<Parts, NotificationError> {
        match content {
            Content::Given(given) => Ok(given.into()),
            Content::Template(wanted) => {
                let template = self
                    .resolve_template(&wanted.name, wanted.locale.as_deref(), kind)
                    .await?;
                let rendered = self
                    .renderer
                    .render(&template, &Value::Object(wanted.variables))?;
                if let Value::Object(map) = metadata {
                    map.insert("template".to_owned(), json!(template.name));
                    map.insert("locale".to_owned(), json!(template.locale));
                    // The template's category (its metadata's, else the policy's).
                    let category = template
                        .metadata
                        .get("category")
                        .and_then(Value::as_str)
                        .map(str::to_owned)
                        .or_else(|| {
                            self.controls
                                .policy
                                .template_categories
                                .get(&template.name)
                                .cloned()
                        });
                    if let Some(category) = category {
                        map.insert("category".to_owned(), json!(category));
                    }
                }
                Ok(Parts {
                    subject: rendered.subject,
                    text: rendered.text,
                    html: rendered.html,
                })
            }
        }
    }

    // ---- plumbing --------------------------------------------------------------

    fn email_channel(&self) -> Result<Arc<dyn EmailChannel>, NotificationError> {
        self.email
            .clone()
            .ok_or(NotificationError::ChannelNotConfigured {
                kind: NotificationKind::Email,
            })
    }

    fn sms_channel(&self) -> Result<Arc<dyn SmsChannel>, NotificationError> {
        self.sms
            .clone()
            .ok_or(NotificationError::ChannelNotConfigured {
                kind: NotificationKind::Sms,
            })
    }

    fn push_channel(&self) -> Result<Arc<dyn PushChannel>, NotificationError> {
        self.push
            .clone()
            .ok_or(NotificationError::ChannelNotConfigured {
                kind: NotificationKind::Push,
            })
    }

    /// Records `notification` (a channel's as `sending` with its first attempt
    /// begun: one write before the handover), then hands it over (see
    /// [`finish`](Self::finish)). The insert finds a used idempotency key by
    /// its conflict, so a first send makes no lookup and a repeat one: the row
    /// recorded under the key is then replayed, or with
    /// [`OnExisting::Resume`] resumed.
    async fn deliver(
        &self,
        mut notification: Notification,
        outgoing: Option<Outgoing>,
        on_existing: OnExisting,
    ) -> Result<Notification, NotificationError> {
        check_user(&notification.user_id)?;
        if outgoing.is_some() {
            notification.status = NotificationStatus::Sending;
            notification.attempts = 1;
            notification.last_attempt_at = Some(Utc::now());
        }
        let span = info_span!(
            "notification_send",
            notification_id = %notification.id,
            kind = notification.kind.as_str(),
            user_id = %notification.user_id,
        );
        async move {
            let Some(existing) = self.record_or_existing(&notification).await? else {
                return match outgoing {
                    Some(outgoing) => self.finish(notification, outgoing).await,
                    None => Ok(notification),
                };
            };
            match (on_existing, outgoing) {
                // A redelivery: carry on with the row an earlier delivery
                // recorded under the key.
                (OnExisting::Resume, Some(outgoing)) => {
                    self.resume(existing, outgoing, false).await
                }
                (OnExisting::Release, Some(outgoing)) => {
                    self.resume(existing, outgoing, true).await
                }
                _ => replay(existing),
            }
        }
        .instrument(span)
        .await
    }

    /// Carries on with a notification recorded earlier under the same key, as
    /// [`execute_once`](Self::execute_once) describes.
    async fn resume(
        &self,
        existing: Notification,
        outgoing: Outgoing,
        released: bool,
    ) -> Result<Notification, NotificationError> {
        let span = info_span!(
            "notification_send",
            notification_id = %existing.id,
            kind = existing.kind.as_str(),
            user_id = %existing.user_id,
            resumed_from = existing.status.as_str(),
        );
        async move {
            match existing.status {
                NotificationStatus::Sent
                | NotificationStatus::Unknown
                | NotificationStatus::Suppressed
                | NotificationStatus::Delivered
                | NotificationStatus::Bounced
                | NotificationStatus::Complained
                | NotificationStatus::Skipped => Ok(existing),
                // Held for quiet hours: sent only by its delayed message.
                NotificationStatus::Scheduled if !released => Ok(existing),
                NotificationStatus::Pending
                | NotificationStatus::Failed
                | NotificationStatus::Scheduled => self.attempt(existing, outgoing).await,
                NotificationStatus::Sending => {
                    let policy = self.config.interrupted_send(existing.kind);
                    let interrupted = DeliveryAttempt::new(
                        &existing,
                        existing.attempts,
                        outgoing.provider(),
                        AttemptOutcome::Unknown,
                    )
                    .with_started_at(existing.last_attempt_at.unwrap_or(existing.created_at))
                    .with_error(INTERRUPTED);
                    match policy {
                        InterruptedSendPolicy::MarkUnknown => {
                            warn!(
                                attempt = existing.attempts,
                                "an interrupted send may or may not have arrived; marked unknown, not sent again"
                            );
                            Ok(self.notifications.record_attempt(&interrupted).await?)
                        }
                        InterruptedSendPolicy::Resend => {
                            warn!(
                                attempt = existing.attempts,
                                "an interrupted send may or may not have arrived; sending again"
                            );
                            // Begin the new attempt first: only the process that
                            // wins it logs the interrupted one, which then leaves
                            // the row's (newer) status alone.
                            let Some(sending) = self.begin(&existing).await? else {
                                return self.current(&existing).await;
                            };
                            self.notifications.record_attempt(&interrupted).await?;
                            self.finish(sending, outgoing).await
                        }
                    }
                }
            }
        }
        .instrument(span)
        .await
    }

    /// One attempt of a recorded, unsent notification: marks it `sending`
    /// (compare-and-set on its attempt count), runs `send` with its id as the
    /// reference, and logs the attempt with its outcome. When another process
    /// started an attempt first, that one's result is returned instead.
    async fn attempt(
        &self,
        notification: Notification,
        outgoing: Outgoing,
    ) -> Result<Notification, NotificationError> {
        match self.begin(&notification).await? {
            Some(sending) => self.finish(sending, outgoing).await,
            None => self.current(&notification).await,
        }
    }

    /// Marks `notification` `sending`; `None` when another process moved it on.
    async fn begin(
        &self,
        notification: &Notification,
    ) -> Result<Option<Notification>, NotificationError> {
        match self
            .notifications
            .begin_attempt(notification.id, notification.attempts, Utc::now())
            .await
        {
            Ok(sending) => Ok(Some(sending)),
            Err(conflict) if conflict.is_conflict() => Ok(None),
            Err(error) => Err(error.into()),
        }
    }

    /// What to answer when another process started an attempt of
    /// `notification` first: its outcome when it has one (`sent`, `unknown`),
    /// else [`NotificationError::InProgress`] (transient: the event is retried
    /// and finds the outcome then).
    async fn current(
        &self,
        notification: &Notification,
    ) -> Result<Notification, NotificationError> {
        let current = self
            .notifications
            .get_notification(&notification.user_id, notification.id)
            .await?;
        match current.status {
            status if status.was_accepted() => Ok(current),
            NotificationStatus::Unknown | NotificationStatus::Suppressed => Ok(current),
            _ => Err(NotificationError::InProgress {
                notification: Box::new(current),
            }),
        }
    }

    /// Hands a `sending` notification to its provider and logs the attempt.
    async fn finish(
        &self,
        mut sending: Notification,
        outgoing: Outgoing,
    ) -> Result<Notification, NotificationError> {
        let provider = outgoing.provider().to_owned();
        let started_at = sending.last_attempt_at.unwrap_or_else(Utc::now);
        let clock = std::time::Instant::now();
        let result = outgoing.send(sending.id.to_string()).await;
        let elapsed = clock.elapsed();
        match result {
            Ok(receipt) => {
                let attempt = DeliveryAttempt::new(
                    &sending,
                    sending.attempts,
                    &receipt.provider,
                    AttemptOutcome::Sent,
                )
                .with_started_at(started_at)
                .with_duration(elapsed);
                let attempt = match &receipt.provider_message_id {
                    Some(id) => attempt.with_provider_message_id(id),
                    None => attempt,
                };
                let recorded = self.notifications.record_attempt(&attempt).await;
                // The providers a failover channel tried first, logged after
                // the sent attempt (so the row is `sent` before any of them
                // is written: a crash in between cannot make it look unsent).
                for failover in &receipt.failovers {
                    let refused = DeliveryAttempt::new(
                        &sending,
                        sending.attempts,
                        &failover.provider,
                        AttemptOutcome::Failed,
                    )
                    .with_started_at(started_at)
                    .with_error(&failover.error);
                    if let Err(store_error) = self.notifications.record_attempt(&refused).await {
                        error!(error = %store_error, provider = %failover.provider, "a failed-over provider could not be logged");
                    }
                }
                match recorded {
                    Ok(updated) => Ok(updated),
                    Err(store_error) => {
                        // It went out: report success, and say loudly that the
                        // history could not be updated (the row stays `sending`,
                        // so a redelivery applies the interrupted-send policy).
                        error!(error = %store_error, provider = %receipt.provider, "sent, but the notification could not be marked sent");
                        sending.status = NotificationStatus::Sent;
                        sending.sent_at = Some(attempt.finished_at());
                        Ok(sending)
                    }
                }
            }
            Err(send_error) => {
                warn!(error = %send_error, transient = send_error.is_transient(), "send failed");
                // One failed attempt per provider a failover channel tried.
                let refusals: Vec<(String, String)> = match &send_error {
                    NotificationError::AllProvidersFailed { failures, .. } => failures
                        .iter()
                        .map(|f| (f.provider.clone(), f.error.clone()))
                        .collect(),
                    NotificationError::ProviderFailed {
                        provider,
                        refused_before,
                        source,
                    } => refused_before
                        .iter()
                        .map(|f| (f.provider.clone(), f.error.clone()))
                        .chain([(provider.clone(), source.to_string())])
                        .collect(),
                    _ => vec![(provider, send_error.to_string())],
                };
                for (provider, error) in refusals {
                    let attempt = DeliveryAttempt::new(
                        &sending,
                        sending.attempts,
                        &provider,
                        AttemptOutcome::Failed,
                    )
                    .with_started_at(started_at)
                    .with_duration(elapsed)
                    .with_error(error);
                    if let Err(store_error) = self.notifications.record_attempt(&attempt).await {
                        error!(error = %store_error, "the failure could not be recorded");
                    }
                }
                Err(send_error)
            }
        }
    }
}

fn check_user(user_id: &str) -> Result<(), NotificationError> {
    if user_id.trim().is_empty() {
        return Err(NotificationError::invalid_request("the user id is empty"));
    }
    Ok(())
}

/// Templates read from the store (or found missing), by name and locale.
type TemplateCache = std::collections::HashMap<
    (String, Option<String>),
    (std::time::Instant, Option<MessageTemplate>),
>;

/// Most (name, locale) entries the template cache holds before it starts over.
const TEMPLATE_CACHE_LIMIT: usize = 10_000;

/// What a send does when its idempotency key is already used by the user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OnExisting {
    /// Return the first result (the public `send_*` calls).
    Replay,
    /// Carry on with the recorded row ([`NotificationService::execute_once`]).
    Resume,
    /// As `Resume`, and a `scheduled` row is due now
    /// ([`NotificationService::execute_released`]).
    Release,
}

/// The error of an attempt whose process died before recording its outcome.
const INTERRUPTED: &str =
    "the sending process stopped after handing it over and before recording the outcome";

/// The error recorded on a notification not sent because of `suppression`.
fn suppressed_error(suppression: &crate::store::Suppression) -> String {
    match &suppression.detail {
        Some(detail) => format!(
            "recipient suppressed ({}): {detail}",
            suppression.reason.as_str()
        ),
        None => format!("recipient suppressed ({})", suppression.reason.as_str()),
    }
}

/// The first result of an idempotent send.
fn replay(existing: Notification) -> Result<Notification, NotificationError> {
    if existing.status == NotificationStatus::Failed {
        return Err(NotificationError::PreviouslyFailed {
            notification: Box::new(existing),
        });
    }
    Ok(existing)
}

/// A checked message and the channel to hand it to.
pub(crate) enum Outgoing {
    Email(Arc<dyn EmailChannel>, EmailMessage),
    Sms(Arc<dyn SmsChannel>, SmsMessage),
    Push(Arc<dyn PushChannel>, PushMessage),
}

impl Outgoing {
    /// The channel and the recipient's address (as the suppression list keys it).
    fn recipient(&self) -> (NotificationKind, &str) {
        match self {
            Self::Email(_, email) => (NotificationKind::Email, email.to.address()),
            Self::Sms(_, sms) => (NotificationKind::Sms, sms.to.as_str()),
            Self::Push(_, push) => (NotificationKind::Push, push.device_token.as_str()),
        }
    }

    /// The provider's name in the attempt log.
    fn provider(&self) -> &str {
        match self {
            Self::Email(channel, _) => channel.provider(),
            Self::Sms(channel, _) => channel.provider(),
            Self::Push(channel, _) => channel.provider(),
        }
    }

    /// Hands the message over, with `reference` (the notification's id).
    async fn send(self, reference: String) -> Result<SendReceipt, NotificationError> {
        match self {
            Self::Email(channel, email) => {
                channel.send_email(&email.with_reference(reference)).await
            }
            Self::Sms(channel, sms) => channel.send_sms(&sms.with_reference(reference)).await,
            Self::Push(channel, push) => channel.send_push(&push.with_reference(reference)).await,
        }
    }
}

/// The subject (or title) and bodies of a message, given or rendered.
struct Parts {
    subject: Option<String>,
    text: Option<String>,
    html: Option<String>,
}

impl From<EmailBody> for Parts {
    fn from(body: EmailBody) -> Self {
        Self {
            subject: Some(body.subject),
            text: body.text,
            html: body.html,
        }
    }
}

impl From<String> for Parts {
    fn from(text: String) -> Self {
        Self {
            subject: None,
            text: Some(text),
            html: None,
        }
    }
}

impl From<PushBody> for Parts {
    fn from(body: PushBody) -> Self {
        Self {
            subject: Some(body.title),
            text: Some(body.body),
            html: None,
        }
    }
}
