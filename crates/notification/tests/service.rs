//! The service with recording channels: templates, system notifications,
//! idempotency, security of template values, and trait-object guarantees.

use std::sync::Arc;

use messaging_model::{MessageTemplate, NotificationKind, NotificationStatus, TemplateKind};
use notification::channel::{
    EmailChannel, EmailMessage, PushChannel, PushMessage, RecordingChannel, SmsChannel, SmsMessage,
    StubFailure,
};
use notification::events::EventRule;
use notification::store::{
    InMemoryNotificationStore, InMemoryTemplateStore, NotificationStore, TemplateStore,
};
use notification::template::MessageTemplateExt;
use notification::{
    EmailRequest, NotificationError, NotificationService, SmsRequest, SystemNotificationRequest,
    TemplateRef,
};
use serde_json::json;

struct Setup {
    service: NotificationService,
    email: RecordingChannel<EmailMessage>,
    sms: RecordingChannel<SmsMessage>,
    store: InMemoryNotificationStore,
    templates: InMemoryTemplateStore,
}

fn setup() -> Setup {
    let email = RecordingChannel::new();
    let sms = RecordingChannel::new();
    let store = InMemoryNotificationStore::new();
    let templates = InMemoryTemplateStore::new();
    let service = NotificationService::new(Arc::new(store.clone()), Arc::new(templates.clone()))
        .with_email(Arc::new(email.clone()))
        .with_sms(Arc::new(sms.clone()))
        .with_push(Arc::new(RecordingChannel::<PushMessage>::new()));
    Setup {
        service,
        email,
        sms,
        store,
        templates,
    }
}

fn welcome() -> MessageTemplate {
    MessageTemplate::new(
        "welcome_email",
        TemplateKind::Email,
        "Hello {{name}}, welcome!",
    )
    .with_subject("Welcome {{name}}")
    .with_variables(["name"])
}

#[test]
fn channels_stores_and_rules_are_send_sync_trait_objects() {
    fn assert_send_sync<T: ?Sized + Send + Sync>() {}
    assert_send_sync::<dyn EmailChannel>();
    assert_send_sync::<dyn SmsChannel>();
    assert_send_sync::<dyn PushChannel>();
    assert_send_sync::<dyn NotificationStore>();
    assert_send_sync::<dyn TemplateStore>();
    assert_send_sync::<dyn EventRule>();
    assert_send_sync::<NotificationService>();
    let _: Arc<dyn EmailChannel> = Arc::new(RecordingChannel::<EmailMessage>::new());
}

#[tokio::test]
async fn create_template_checks_syntax_and_variables() {
    let Setup {
        service, templates, ..
    } = setup();
    let stored = service.create_template(welcome()).await.unwrap();
    assert_eq!(stored.name, "welcome_email");

    let cases = [
        (
            MessageTemplate::new("bad_syntax", TemplateKind::Sms, "Hi {{#if x}}"),
            "invalid",
        ),
        (
            MessageTemplate::new("undeclared", TemplateKind::Sms, "Hi {{name}} {{code}}")
                .with_variables(["name"]),
            "used but not declared: code",
        ),
        (
            MessageTemplate::new("unused", TemplateKind::Sms, "Hi {{name}}")
                .with_variables(["name", "code"]),
            "declared but not used: code",
        ),
        (
            MessageTemplate::new("no_subject", TemplateKind::Email, "Hi"),
            "needs a subject",
        ),
        (
            MessageTemplate::new("raw", TemplateKind::Email, "{{{html}}}")
                .with_subject("s")
                .with_variables(["html"]),
            "unescaped",
        ),
        (
            MessageTemplate::new("partial", TemplateKind::Sms, "{{> footer}}"),
            "partials",
        ),
        (
            MessageTemplate::new("bad name!", TemplateKind::Sms, "x"),
            "name",
        ),
    ];
    for (template, expected) in cases {
        let name = template.name.clone();
        let error = service.create_template(template).await.unwrap_err();
        assert!(error.to_string().contains(expected), "{name}: {error}");
        assert!(error.is_permanent());
    }
    assert_eq!(
        templates.list().await.unwrap().len(),
        1,
        "nothing invalid was stored"
    );
}

#[tokio::test]
async fn template_email_renders_and_missing_template_is_not_found() {
    let Setup {
        service,
        email,
        store,
        ..
    } = setup();
    service.create_template(welcome()).await.unwrap();
    let sent = service
        .send_email_with_template(
            EmailRequest::template(
                "u1",
                "ann@example.com",
                TemplateRef::new("welcome_email").with_variable("name", "Ann"),
            )
            .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(sent.status, NotificationStatus::Sent);
    assert_eq!(sent.title, "Welcome Ann");
    assert_eq!(email.sent()[0].text.as_deref(), Some("Hello Ann, welcome!"));
    assert_eq!(store.all()[0].metadata["template"], "welcome_email");

    let error = service
        .send_email_with_template(
            EmailRequest::template("u1", "ann@example.com", TemplateRef::new("nope")).unwrap(),
        )
        .await
        .unwrap_err();
    assert!(error.is_template_not_found(), "{error}");
    assert!(error.is_permanent());
}

#[tokio::test]
async fn a_missing_variable_is_an_error_never_a_blank_send() {
    let Setup {
        service,
        email,
        store,
        ..
    } = setup();
    service.create_template(welcome()).await.unwrap();
    for variables in [json!({}), json!({"name": null}), json!({"other": "x"})] {
        let error = service
            .send_email_with_template(
                EmailRequest::template(
                    "u1",
                    "ann@example.com",
                    TemplateRef::new("welcome_email").with_variables(variables),
                )
                .unwrap(),
            )
            .await
            .unwrap_err();
        assert!(
            matches!(error, NotificationError::MissingVariables { ref missing, .. } if missing == &["name"]),
            "{error}"
        );
    }
    assert!(email.sent().is_empty());
    assert!(store.is_empty());
}

#[tokio::test]
async fn inactive_templates_are_refused() {
    let Setup { service, email, .. } = setup();
    service.create_template(welcome()).await.unwrap();
    service
        .deactivate_template("welcome_email", None)
        .await
        .unwrap();
    let error = service
        .send_email_with_template(
            EmailRequest::template(
                "u1",
                "ann@example.com",
                TemplateRef::new("welcome_email").with_variable("name", "Ann"),
            )
            .unwrap(),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(error, NotificationError::TemplateInactive { .. }),
        "{error}"
    );
    assert!(email.sent().is_empty());
}

#[tokio::test]
async fn a_template_of_another_kind_is_refused() {
    let Setup { service, .. } = setup();
    service.create_template(welcome()).await.unwrap();
    let error = service
        .send_sms_with_template(
            SmsRequest::template(
                "u1",
                "+14155550100",
                TemplateRef::new("welcome_email").with_variable("name", "A"),
            )
            .unwrap(),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(error, NotificationError::TemplateKindMismatch { .. }),
        "{error}"
    );
}

#[tokio::test]
async fn locale_variants_fall_back_to_the_language_then_the_default() {
    let Setup { service, email, .. } = setup();
    service.create_template(welcome()).await.unwrap();
    service
        .create_template(
            MessageTemplate::new("welcome_email", TemplateKind::Email, "Olá {{name}}!")
                .with_subject("Bem-vindo {{name}}")
                .with_variables(["name"])
                .with_locale("pt"),
        )
        .await
        .unwrap();
    service
        .create_template(
            MessageTemplate::new("welcome_email", TemplateKind::Email, "Bonjour {{name}} !")
                .with_subject("Bienvenue {{name}}")
                .with_variables(["name"])
                .with_locale("fr-CA"),
        )
        .await
        .unwrap();
    for (locale, subject) in [
        (Some("pt-BR"), "Bem-vindo Ann"),
        (Some("pt"), "Bem-vindo Ann"),
        (Some("fr-CA"), "Bienvenue Ann"),
        (Some("fr"), "Welcome Ann"),
        (Some("de-DE"), "Welcome Ann"),
        (None, "Welcome Ann"),
    ] {
        let mut template = TemplateRef::new("welcome_email").with_variable("name", "Ann");
        template.locale = locale.map(str::to_owned);
        let request = EmailRequest::template("u1", "ann@example.com", template).unwrap();
        service.send_email_with_template(request).await.unwrap();
        assert_eq!(email.sent().last().unwrap().subject, subject, "{locale:?}");
    }
}

#[tokio::test]
async fn an_updated_template_is_rendered_fresh_not_from_the_cache() {
    let Setup { service, sms, .. } = setup();
    let first =
        MessageTemplate::new("code", TemplateKind::Sms, "Code {{code}}").with_variables(["code"]);
    service.create_template(first).await.unwrap();
    let send = || {
        service.send_sms_with_template(
            SmsRequest::template(
                "u",
                "+14155550100",
                TemplateRef::new("code").with_variable("code", "1"),
            )
            .unwrap(),
        )
    };
    send().await.unwrap();
    assert_eq!(service.renderer().cached(), 1);
    service
        .update_template(
            MessageTemplate::new("code", TemplateKind::Sms, "Your code: {{code}}")
                .with_variables(["code"]),
        )
        .await
        .unwrap();
    send().await.unwrap();
    let texts: Vec<String> = sms.sent().into_iter().map(|m| m.text).collect();
    assert_eq!(
        texts,
        ["Code 1", "Your code: 1"],
        "this service's update is seen at once"
    );
}

#[tokio::test]
async fn a_template_changed_by_another_process_is_read_again_once_the_cache_ttl_passes() {
    let Setup {
        service,
        sms,
        templates,
        ..
    } = setup();
    // TTL zero: the store is read on every send (the default reuses a read for 5 s).
    let service = service.with_config(
        notification::NotificationConfig::default()
            .with_template_cache_ttl(std::time::Duration::ZERO),
    );
    let first =
        MessageTemplate::new("code", TemplateKind::Sms, "Code {{code}}").with_variables(["code"]);
    service.create_template(first).await.unwrap();
    let send = || {
        service.send_sms_with_template(
            SmsRequest::template(
                "u",
                "+14155550100",
                TemplateRef::new("code").with_variable("code", "1"),
            )
            .unwrap(),
        )
    };
    send().await.unwrap();
    // Changed behind the service's back (another process, straight into the store).
    let mut changed = templates.get_template("code", None).await.unwrap().unwrap();
    changed.content = "CODE={{code}}".into();
    templates.save(&changed).await.unwrap();
    send().await.unwrap();
    let texts: Vec<String> = sms.sent().into_iter().map(|m| m.text).collect();
    assert_eq!(
        texts,
        ["Code 1", "CODE=1"],
        "recompiled, never served stale"
    );
}

#[tokio::test]
async fn values_never_become_template_code_markup_or_headers() {
    let Setup {
        service,
        email,
        sms,
        ..
    } = setup();
    service
        .create_template(
            MessageTemplate::new("note", TemplateKind::Email, "<p>{{comment}}</p>")
                .with_subject("Note from {{author}}")
                .with_variables(["comment", "author"])
                .html()
                .with_text_alternative("{{comment}}"),
        )
        .await
        .unwrap();
    service
        .create_template(
            MessageTemplate::new("note_sms", TemplateKind::Sms, "{{comment}}")
                .with_variables(["comment"]),
        )
        .await
        .unwrap();
    let hostile = "{{author}} {{#each x}}loop{{/each}} <script>alert('x')</script> & \"quoted\"";
    service
        .send_email_with_template(
            EmailRequest::template(
                "u",
                "ann@example.com",
                TemplateRef::new("note")
                    .with_variable("comment", hostile)
                    .with_variable("author", "Eve\r\nBcc: all@example.com"),
            )
            .unwrap(),
        )
        .await
        .unwrap();
    let sent = &email.sent()[0];
    let html = sent.html.as_deref().unwrap();
    assert!(
        html.contains("{{author}} {{#each x}}loop{{/each}}"),
        "not evaluated: {html}"
    );
    assert!(
        html.contains("&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp; &quot;quoted&quot;"),
        "{html}"
    );
    assert!(!html.contains("<script>"));
    assert_eq!(
        sent.text.as_deref(),
        Some(hostile),
        "text bodies are not escaped"
    );
    assert!(
        !sent.subject.contains('\r') && !sent.subject.contains('\n'),
        "{:?}",
        sent.subject
    );

    service
        .send_sms_with_template(
            SmsRequest::template(
                "u",
                "+14155550100",
                TemplateRef::new("note_sms").with_variable("comment", hostile),
            )
            .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(
        sms.sent()[0].text,
        hostile,
        "SMS text is neither evaluated nor escaped"
    );
}

#[tokio::test]
async fn system_notifications_are_recorded_only() {
    let Setup {
        service,
        email,
        store,
        ..
    } = setup();
    let notification = service
        .send_system_notification(
            SystemNotificationRequest::new("u1", "Maintenance", "Tonight at 22:00")
                .with_metadata(json!({"severity": "info"})),
        )
        .await
        .unwrap();
    assert_eq!(notification.kind, NotificationKind::System);
    assert_eq!(notification.status, NotificationStatus::Sent);
    assert!(notification.sent_at.is_some());
    assert!(!notification.is_read);
    assert!(email.sent().is_empty());
    let stored = store.get_notification("u1", notification.id).await.unwrap();
    assert_eq!(stored.metadata["severity"], "info");
    assert_eq!(store.unread_count("u1").await.unwrap(), 1);

    let keyed = SystemNotificationRequest::new("u1", "Once", "only once").with_idempotency_key("k");
    let first = service
        .send_system_notification(keyed.clone())
        .await
        .unwrap();
    let second = service.send_system_notification(keyed).await.unwrap();
    assert_eq!(first.id, second.id);
    assert_eq!(store.for_user("u1").len(), 2);
}

#[tokio::test]
async fn a_failing_channel_records_a_failed_notification() {
    let Setup {
        service,
        email,
        store,
        ..
    } = setup();
    email.fail_next(1, StubFailure::Transient);
    let error = service
        .send_email(notification::EmailRequest::new("u1", "ann@example.com", "Hi", "x").unwrap())
        .await
        .unwrap_err();
    assert!(error.is_transient());
    let recorded = store.all();
    assert_eq!(recorded[0].status, NotificationStatus::Failed);
    assert!(recorded[0].error.is_some());
    assert!(recorded[0].sent_at.is_none());
}

#[tokio::test]
async fn a_store_outage_is_a_transient_error() {
    let Setup {
        service,
        email,
        store,
        ..
    } = setup();
    store.set_unavailable(true);
    let error = service
        .send_email(notification::EmailRequest::new("u1", "ann@example.com", "Hi", "x").unwrap())
        .await
        .unwrap_err();
    assert!(matches!(error, NotificationError::Store(_)));
    assert!(error.is_transient());
    assert!(
        email.sent().is_empty(),
        "nothing is sent that cannot be recorded"
    );
}

#[tokio::test]
async fn a_missing_channel_is_a_permanent_error() {
    let service = NotificationService::in_memory();
    let error = service
        .send_sms(notification::SmsRequest::new("u", "+14155550100", "x").unwrap())
        .await
        .unwrap_err();
    assert!(matches!(
        error,
        NotificationError::ChannelNotConfigured {
            kind: NotificationKind::Sms
        }
    ));
    assert!(error.is_permanent());
}

#[tokio::test]
async fn html_only_emails_and_empty_user_ids() {
    let Setup { service, email, .. } = setup();
    service
        .send_email(
            notification::EmailRequest::new_html("u", "ann@example.com", "Hi", "<p>Hi</p>")
                .unwrap(),
        )
        .await
        .unwrap();
    let sent = &email.sent()[0];
    assert_eq!(
        (sent.text.as_deref(), sent.html.as_deref()),
        (None, Some("<p>Hi</p>"))
    );
    let error = service
        .send_email(notification::EmailRequest::new("", "ann@example.com", "Hi", "x").unwrap())
        .await
        .unwrap_err();
    assert!(
        matches!(error, NotificationError::InvalidRequest { .. }),
        "{error}"
    );
}

#[tokio::test]
async fn execute_once_keeps_one_row_per_key_through_failures_and_redeliveries() {
    use notification::NotificationAction;
    use notification::store::InboxQuery;
    let Setup {
        service,
        email,
        store,
        ..
    } = setup();
    let action = || {
        NotificationAction::Email(
            EmailRequest::new("u1", "ada@example.com", "Welcome", "Hello").unwrap(),
        )
    };
    let key = "user.registered:u1:0";
    // Three failed deliveries (a provider outage), each a redelivery of the event.
    email.fail_next(3, StubFailure::Transient);
    for _ in 0..3 {
        let error = service.execute_once(action(), key).await.unwrap_err();
        assert!(error.is_transient(), "{error:?}");
    }
    let rows = store
        .list_for_user("u1", &InboxQuery::default())
        .await
        .unwrap()
        .items;
    assert_eq!(rows.len(), 1, "retries update one row: {rows:?}");
    assert_eq!(rows[0].status, NotificationStatus::Failed);
    // The provider is back: the same row ends sent.
    let sent = service.execute_once(action(), key).await.unwrap();
    assert_eq!(sent.status, NotificationStatus::Sent);
    assert_eq!(sent.id, rows[0].id);
    // Redelivered after success: nothing is sent again.
    let again = service.execute_once(action(), key).await.unwrap();
    assert_eq!(again.id, sent.id);
    assert_eq!(email.sent().len(), 1, "one email reached the provider");
    assert_eq!(email.attempts(), 4);
    let rows = store
        .list_for_user("u1", &InboxQuery::default())
        .await
        .unwrap()
        .items;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].status, NotificationStatus::Sent);
    assert_eq!(rows[0].idempotency_key.as_deref(), Some(key));
}

#[tokio::test]
async fn execute_once_sends_a_row_a_crashed_consumer_left_pending_on_that_row() {
    use messaging_model::Notification;
    use notification::NotificationAction;
    use notification::store::InboxQuery;
    let Setup {
        service,
        email,
        store,
        ..
    } = setup();
    let key = "user.registered:u2:0";
    // What a consumer killed between recording and sending leaves behind.
    let mut abandoned = Notification::new("u2", NotificationKind::Email, "Welcome", "Hello");
    abandoned.idempotency_key = Some(key.to_owned());
    store.record(&abandoned).await.unwrap();
    let action = NotificationAction::Email(
        EmailRequest::new("u2", "bo@example.com", "Welcome", "Hello").unwrap(),
    );
    let sent = service.execute_once(action, key).await.unwrap();
    assert_eq!(sent.id, abandoned.id, "sent on the abandoned row");
    assert_eq!(sent.status, NotificationStatus::Sent);
    let rows = store
        .list_for_user("u2", &InboxQuery::default())
        .await
        .unwrap()
        .items;
    assert_eq!(rows.len(), 1, "no second row: {rows:?}");
    assert_eq!(email.sent().len(), 1);
}

#[tokio::test]
async fn every_attempt_of_execute_once_is_in_the_attempt_log() {
    use messaging_model::AttemptOutcome;
    use notification::NotificationAction;
    let Setup {
        service,
        email,
        store,
        ..
    } = setup();
    let action = || {
        NotificationAction::Email(
            EmailRequest::new("u3", "cy@example.com", "Welcome", "Hello").unwrap(),
        )
    };
    let key = "user.registered:u3:0";
    email.fail_next(2, StubFailure::Transient);
    for _ in 0..2 {
        service.execute_once(action(), key).await.unwrap_err();
    }
    let sent = service.execute_once(action(), key).await.unwrap();
    service.execute_once(action(), key).await.unwrap();
    assert_eq!(sent.attempts, 3);
    let log = store.list_attempts("u3", sent.id).await.unwrap();
    let outcomes: Vec<(u32, AttemptOutcome)> = log.iter().map(|a| (a.number, a.outcome)).collect();
    assert_eq!(
        outcomes,
        [
            (1, AttemptOutcome::Failed),
            (2, AttemptOutcome::Failed),
            (3, AttemptOutcome::Sent)
        ],
        "one entry per attempt, none for the redelivery after success"
    );
    assert!(
        log.iter()
            .all(|a| a.provider == "recording" && a.duration_ms.is_some())
    );
    assert!(
        log[0].error.as_deref().unwrap_or_default().contains("451"),
        "{log:?}"
    );
    assert_eq!(log[2].error, None);
}

/// What a worker killed after handing the email over and before recording the
/// outcome leaves: the row `sending`, attempt 1 begun.
async fn interrupted_send(store: &InMemoryNotificationStore, user: &str, key: &str) -> uuid::Uuid {
    use messaging_model::Notification;
    let mut row = Notification::new(user, NotificationKind::Email, "Welcome", "Hello");
    row.idempotency_key = Some(key.to_owned());
    store.record(&row).await.unwrap();
    store
        .begin_attempt(row.id, 0, chrono::Utc::now())
        .await
        .unwrap();
    row.id
}

#[tokio::test]
async fn an_interrupted_send_is_sent_again_under_resend_and_logged_unknown() {
    use messaging_model::AttemptOutcome;
    use notification::NotificationAction;
    let Setup {
        service,
        email,
        store,
        ..
    } = setup();
    let key = "user.registered:u4:0";
    let id = interrupted_send(&store, "u4", key).await;
    let action = NotificationAction::Email(
        EmailRequest::new("u4", "di@example.com", "Welcome", "Hello").unwrap(),
    );
    let sent = service.execute_once(action, key).await.unwrap();
    assert_eq!(
        (sent.id, sent.status, sent.attempts),
        (id, NotificationStatus::Sent, 2)
    );
    assert_eq!(email.sent().len(), 1, "sent again (the default policy)");
    let log = store.list_attempts("u4", id).await.unwrap();
    let outcomes: Vec<(u32, AttemptOutcome)> = log.iter().map(|a| (a.number, a.outcome)).collect();
    assert_eq!(
        outcomes,
        [(1, AttemptOutcome::Unknown), (2, AttemptOutcome::Sent)]
    );
    assert_eq!(log[0].duration_ms, None);
    assert_eq!(store.for_user("u4").len(), 1, "still one row");
}

#[tokio::test]
async fn an_interrupted_send_is_marked_unknown_under_mark_unknown_and_never_sent_again() {
    use messaging_model::AttemptOutcome;
    use notification::{InterruptedSendPolicy, NotificationAction, NotificationConfig};
    let Setup {
        service,
        email,
        store,
        ..
    } = setup();
    let service = service.with_config(
        NotificationConfig::default()
            .with_interrupted_send(NotificationKind::Email, InterruptedSendPolicy::MarkUnknown),
    );
    let key = "user.registered:u5:0";
    let id = interrupted_send(&store, "u5", key).await;
    let action = || {
        NotificationAction::Email(
            EmailRequest::new("u5", "ed@example.com", "Welcome", "Hello").unwrap(),
        )
    };
    let marked = service.execute_once(action(), key).await.unwrap();
    assert_eq!(
        (marked.id, marked.status),
        (id, NotificationStatus::Unknown)
    );
    // Redelivered again: still nothing sent, nothing more logged.
    let again = service.execute_once(action(), key).await.unwrap();
    assert_eq!(again.status, NotificationStatus::Unknown);
    assert_eq!(email.attempts(), 0, "mark_unknown never sends again");
    let log = store.list_attempts("u5", id).await.unwrap();
    assert_eq!(log.len(), 1);
    assert_eq!(
        (log[0].number, log[0].outcome),
        (1, AttemptOutcome::Unknown)
    );
}

/// The in-memory store, counting idempotency-key lookups.
#[derive(Clone, Default)]
struct CountingStore {
    inner: InMemoryNotificationStore,
    lookups: Arc<std::sync::atomic::AtomicUsize>,
}

impl CountingStore {
    fn lookups(&self) -> usize {
        self.lookups.load(std::sync::atomic::Ordering::SeqCst)
    }
}

mod counting {
    use chrono::{DateTime, Utc};
    use messaging_model::{DeliveryAttempt, Notification};
    use notification::store::{InboxPage, InboxQuery, NotificationStore, StatusUpdate, StoreError};
    use uuid::Uuid;

    use super::CountingStore;

    #[async_trait::async_trait]
    impl NotificationStore for CountingStore {
        async fn find_by_idempotency_key(
            &self,
            user_id: &str,
            key: &str,
        ) -> Result<Option<Notification>, StoreError> {
            self.lookups
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            self.inner.find_by_idempotency_key(user_id, key).await
        }
        async fn record(&self, notification: &Notification) -> Result<(), StoreError> {
            self.inner.record(notification).await
        }
        async fn record_batch(&self, notifications: &[Notification]) -> Result<(), StoreError> {
            self.inner.record_batch(notifications).await
        }
        async fn update_status(
            &self,
            id: Uuid,
            update: StatusUpdate,
        ) -> Result<Notification, StoreError> {
            self.inner.update_status(id, update).await
        }
        async fn begin_attempt(
            &self,
            id: Uuid,
            seen_attempts: u32,
            at: DateTime<Utc>,
        ) -> Result<Notification, StoreError> {
            self.inner.begin_attempt(id, seen_attempts, at).await
        }
        async fn record_attempt(
            &self,
            attempt: &DeliveryAttempt,
        ) -> Result<Notification, StoreError> {
            self.inner.record_attempt(attempt).await
        }
        async fn list_attempts(
            &self,
            user_id: &str,
            id: Uuid,
        ) -> Result<Vec<DeliveryAttempt>, StoreError> {
            self.inner.list_attempts(user_id, id).await
        }
        async fn get_notification(
            &self,
            user_id: &str,
            id: Uuid,
        ) -> Result<Notification, StoreError> {
            self.inner.get_notification(user_id, id).await
        }
        async fn list_for_user(
            &self,
            user_id: &str,
            query: &InboxQuery,
        ) -> Result<InboxPage, StoreError> {
            self.inner.list_for_user(user_id, query).await
        }
        async fn unread_count(&self, user_id: &str) -> Result<u64, StoreError> {
            self.inner.unread_count(user_id).await
        }
        async fn mark_read(&self, user_id: &str, id: Uuid) -> Result<(), StoreError> {
            self.inner.mark_read(user_id, id).await
        }
        async fn mark_unread(&self, user_id: &str, id: Uuid) -> Result<(), StoreError> {
            self.inner.mark_unread(user_id, id).await
        }
        async fn mark_all_read(&self, user_id: &str) -> Result<u64, StoreError> {
            self.inner.mark_all_read(user_id).await
        }
        async fn delete(&self, user_id: &str, id: Uuid) -> Result<(), StoreError> {
            self.inner.delete(user_id, id).await
        }
        async fn purge_older_than(&self, cutoff: DateTime<Utc>) -> Result<u64, StoreError> {
            self.inner.purge_older_than(cutoff).await
        }
    }
}

#[tokio::test]
async fn a_keyed_send_looks_its_key_up_only_when_it_is_a_repeat() {
    let store = CountingStore::default();
    let email = RecordingChannel::<EmailMessage>::new();
    let service = NotificationService::new(
        Arc::new(store.clone()),
        Arc::new(InMemoryTemplateStore::new()),
    )
    .with_email(Arc::new(email.clone()));
    let request = EmailRequest::new("u1", "ann@example.com", "Once", "body")
        .unwrap()
        .with_idempotency_key("k");
    let first = service.send_email(request.clone()).await.unwrap();
    assert_eq!(store.lookups(), 0, "a first send makes no lookup");
    let again = service.send_email(request).await.unwrap();
    assert_eq!(first.id, again.id);
    assert_eq!(store.lookups(), 1, "a repeat makes exactly one");
    assert_eq!(email.sent().len(), 1, "and sends nothing");

    let notice =
        SystemNotificationRequest::new("u1", "Once", "only once").with_idempotency_key("s");
    service
        .send_system_notification(notice.clone())
        .await
        .unwrap();
    assert_eq!(store.lookups(), 1);
    service.send_system_notification(notice).await.unwrap();
    assert_eq!(store.lookups(), 2);
    assert_eq!(store.inner.len(), 2);
}
