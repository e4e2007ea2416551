//! Email over real SMTP: every test starts an smtp-sink on a loopback port and
//! reads back what the server received.

use std::sync::Arc;
use std::time::Duration;

use messaging_model::{MessageTemplate, NotificationStatus, TemplateKind};
use notification::channel::{ProviderRetryPolicy, SmtpConfig, SmtpEmailChannel};
use notification::store::{InMemoryNotificationStore, InMemoryTemplateStore};
use notification::template::MessageTemplateExt;
use notification::{
    EmailRequest, NotificationConfig, NotificationError, NotificationService, TemplateRef,
};
use smtp_sink::{Reply, SmtpCommand, SmtpSink};

const WAIT: Duration = Duration::from_secs(10);

fn smtp_config(sink: &SmtpSink) -> SmtpConfig {
    SmtpConfig::dangerous_unencrypted(sink.host())
        .with_port(sink.port())
        .with_from("noreply@example.com", Some("Example Suite"))
        .with_hello_name("tests.localhost")
        .with_timeout(Duration::from_secs(5))
        .with_retry(
            ProviderRetryPolicy::default()
                .with_max_attempts(3)
                .with_initial_backoff(Duration::from_millis(10)),
        )
}

struct Setup {
    sink: SmtpSink,
    service: NotificationService,
    store: InMemoryNotificationStore,
}

async fn setup() -> Setup {
    setup_with(|config| config).await
}

async fn setup_with(configure: impl FnOnce(SmtpConfig) -> SmtpConfig) -> Setup {
    let sink = SmtpSink::start().await.unwrap();
    let channel = SmtpEmailChannel::new(configure(smtp_config(&sink))).unwrap();
    let store = InMemoryNotificationStore::new();
    let service = NotificationService::new(
        Arc::new(store.clone()),
        Arc::new(InMemoryTemplateStore::new()),
    )
    .with_email(Arc::new(channel));
    Setup {
        sink,
        service,
        store,
    }
}

#[tokio::test]
async fn sends_text_and_html_email_over_smtp() {
    let Setup {
        sink,
        service,
        store,
    } = setup().await;
    let sent = service
        .send_email(
            EmailRequest::new(
                "user-1",
                "ann@example.com",
                "Your report",
                "Plain body: café",
            )
            .unwrap()
            .with_html("<p>HTML body</p>")
            .with_to_name("Ann Example"),
        )
        .await
        .unwrap();
    assert_eq!(sent.status, NotificationStatus::Sent);
    assert!(sent.sent_at.is_some());

    let messages = sink.wait_for_messages(1, WAIT).await.unwrap();
    let message = &messages[0];
    assert_eq!(message.envelope_from, "noreply@example.com");
    assert_eq!(message.recipients, ["ann@example.com"]);
    assert_eq!(message.subject().as_deref(), Some("Your report"));
    assert!(message.header("To").unwrap().contains("ann@example.com"));
    assert!(message.header("From").unwrap().contains("Example Suite"));
    assert_eq!(message.text_body().unwrap().trim_end(), "Plain body: café");
    assert_eq!(message.html_body().unwrap().trim_end(), "<p>HTML body</p>");

    let recorded = store.all();
    assert_eq!(recorded.len(), 1);
    assert_eq!(recorded[0].status, NotificationStatus::Sent);
    assert_eq!(recorded[0].title, "Your report");
    assert_eq!(recorded[0].metadata["to"], "ann@example.com");
}

#[tokio::test]
async fn sends_a_templated_email_with_escaped_html() {
    let Setup { sink, service, .. } = setup().await;
    service
        .create_template(
            MessageTemplate::new(
                "order_shipped",
                TemplateKind::Email,
                "<h1>Hi {{name}}</h1><p>Order {{order}} shipped</p>",
            )
            .with_subject("Order {{order}} shipped")
            .with_variables(["name", "order"])
            .html()
            .with_text_alternative("Hi {{name}}, order {{order}} shipped"),
        )
        .await
        .unwrap();
    service
        .send_email_with_template(
            EmailRequest::template(
                "user-2",
                "bob@example.com",
                TemplateRef::new("order_shipped")
                    .with_variable("name", "Bob <script>alert(1)</script>")
                    .with_variable("order", "A-17"),
            )
            .unwrap(),
        )
        .await
        .unwrap();
    let message = &sink.wait_for_messages(1, WAIT).await.unwrap()[0];
    assert_eq!(message.subject().as_deref(), Some("Order A-17 shipped"));
    let html = message.html_body().unwrap();
    assert!(
        html.contains("<h1>Hi Bob &lt;script&gt;alert(1)&lt;/script&gt;</h1>"),
        "{html}"
    );
    assert!(!html.contains("<script>"));
    assert_eq!(
        message.text_body().unwrap().trim_end(),
        "Hi Bob <script>alert(1)</script>, order A-17 shipped"
    );
}

#[tokio::test]
async fn a_4xx_reply_is_retried_and_then_delivered() {
    let Setup { sink, service, .. } = setup().await;
    sink.fail_next(SmtpCommand::Rcpt, 1, Reply::new(451, "4.3.0 mailbox busy"));
    let sent = service
        .send_email(EmailRequest::new("user-1", "ann@example.com", "Retry me", "body").unwrap())
        .await
        .unwrap();
    assert_eq!(sent.status, NotificationStatus::Sent);
    let messages = sink.wait_for_messages(1, WAIT).await.unwrap();
    assert_eq!(messages[0].subject().as_deref(), Some("Retry me"));
    assert_eq!(sink.command_count(SmtpCommand::Rcpt), 2);
}

#[tokio::test]
async fn a_persisting_4xx_reply_is_a_transient_failure() {
    let Setup {
        sink,
        service,
        store,
    } = setup_with(|config| config.with_retry(ProviderRetryPolicy::none())).await;
    sink.fail_next(
        SmtpCommand::MessageEnd,
        1,
        Reply::new(452, "4.2.2 mailbox full"),
    );
    let error = service
        .send_email(EmailRequest::new("user-1", "ann@example.com", "Full", "body").unwrap())
        .await
        .unwrap_err();
    assert!(error.is_transient(), "{error}");
    assert!(
        matches!(
            error,
            NotificationError::Smtp {
                code: Some(452),
                ..
            }
        ),
        "{error:?}"
    );
    let recorded = store.all();
    assert_eq!(recorded[0].status, NotificationStatus::Failed);
    assert!(
        recorded[0].error.as_deref().unwrap().contains("452"),
        "{:?}",
        recorded[0].error
    );
    assert_eq!(sink.message_count(), 0);
}

#[tokio::test]
async fn a_5xx_reply_fails_at_once_without_retry() {
    let Setup {
        sink,
        service,
        store,
    } = setup().await;
    sink.fail_next(
        SmtpCommand::Rcpt,
        usize::MAX,
        Reply::new(550, "5.1.1 no such user"),
    );
    let error = service
        .send_email(EmailRequest::new("user-1", "ghost@example.com", "Hello", "body").unwrap())
        .await
        .unwrap_err();
    assert!(error.is_permanent(), "{error}");
    assert!(matches!(
        error,
        NotificationError::Smtp {
            code: Some(550),
            transient: false,
            ..
        }
    ));
    assert_eq!(
        sink.command_count(SmtpCommand::Rcpt),
        1,
        "a permanent failure is not retried"
    );
    assert_eq!(store.all()[0].status, NotificationStatus::Failed);
}

#[tokio::test]
async fn an_unreachable_server_is_a_transient_failure() {
    // Bind a port, then close it: connecting is refused.
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let channel = SmtpEmailChannel::new(
        SmtpConfig::dangerous_unencrypted("127.0.0.1")
            .with_port(port)
            .with_from("noreply@example.com", None)
            .with_retry(ProviderRetryPolicy::none()),
    )
    .unwrap();
    let service = NotificationService::in_memory().with_email(Arc::new(channel));
    let error = service
        .send_email(EmailRequest::new("user-1", "ann@example.com", "Hello", "body").unwrap())
        .await
        .unwrap_err();
    assert!(error.is_transient(), "{error:?}");
}

#[tokio::test]
async fn invalid_addresses_are_rejected_before_sending() {
    let Setup {
        sink,
        service: _,
        store,
    } = setup().await;
    for bad in [
        "not-an-address",
        "ann@",
        "@example.com",
        "ann@example.com\r\nBcc: eve@example.com",
        "",
    ] {
        // Refused when the request is built: it cannot reach the service.
        let error = EmailRequest::new("user-1", bad, "Hello", "body").unwrap_err();
        assert!(
            matches!(error, NotificationError::InvalidEmailAddress { .. }),
            "{bad:?}: {error}"
        );
        assert!(error.is_permanent());
    }
    assert!(
        store.is_empty(),
        "nothing is recorded for a request refused outright"
    );
    assert_eq!(sink.connections(), 0);
}

#[tokio::test]
async fn cr_lf_in_subject_or_name_never_creates_a_header() {
    let Setup { sink, service, .. } = setup().await;
    service
        .send_email(
            EmailRequest::new(
                "user-1",
                "ann@example.com",
                "Hello\r\nBcc: eve@example.com\r\nX-Injected: yes",
                "body\r\n.\r\nMAIL FROM:<eve@example.com>",
            )
            .unwrap()
            .with_to_name("Ann\r\nX-Name-Injected: yes"),
        )
        .await
        .unwrap();
    let message = &sink.wait_for_messages(1, WAIT).await.unwrap()[0];
    assert_eq!(message.recipients, ["ann@example.com"]);
    for (name, _) in message.headers() {
        assert!(
            !["bcc", "x-injected", "x-name-injected"].contains(&name.to_ascii_lowercase().as_str()),
            "injected header {name}"
        );
    }
    let subject = message.subject().unwrap();
    assert!(
        subject.starts_with("Hello") && subject.contains("Bcc: eve@example.com"),
        "{subject}"
    );
    // The body's lone dot was stuffed and unstuffed, not taken as the end of data.
    assert!(
        message
            .text_body()
            .unwrap()
            .contains("MAIL FROM:<eve@example.com>")
    );
    assert_eq!(sink.message_count(), 1);
}

#[tokio::test]
async fn template_values_with_cr_lf_stay_in_the_subject_line() {
    let Setup { sink, service, .. } = setup().await;
    service
        .create_template(
            MessageTemplate::new("hello", TemplateKind::Email, "Hi {{name}}")
                .with_subject("Hello {{name}}")
                .with_variables(["name"]),
        )
        .await
        .unwrap();
    service
        .send_email_with_template(
            EmailRequest::template(
                "u",
                "ann@example.com",
                TemplateRef::new("hello").with_variable("name", "Ann\r\nBcc: eve@example.com"),
            )
            .unwrap(),
        )
        .await
        .unwrap();
    let message = &sink.wait_for_messages(1, WAIT).await.unwrap()[0];
    assert!(message.header("Bcc").is_none());
    assert_eq!(message.recipients, ["ann@example.com"]);
}

#[tokio::test]
async fn batch_email_reports_each_recipient_and_one_failure_stops_nothing() {
    let Setup {
        sink,
        service,
        store,
    } = setup_with(|config| config.with_retry(ProviderRetryPolicy::none())).await;
    let service = service.with_config(NotificationConfig::default().with_batch_concurrency(4));
    sink.fail_next(SmtpCommand::Rcpt, 1, Reply::new(550, "5.1.1 no such user"));
    let built: Vec<Result<EmailRequest, NotificationError>> = (0..20)
        .map(|i| {
            let to = if i == 7 {
                "broken-address".to_owned()
            } else {
                format!("user{i}@example.com")
            };
            EmailRequest::new(format!("user-{i}"), to, "News", "Hello")
        })
        .collect();
    // The invalid address is refused when its request is built, so the batch
    // holds the 19 others.
    assert!(matches!(
        built[7],
        Err(NotificationError::InvalidEmailAddress { .. })
    ));
    let requests: Vec<EmailRequest> = built.into_iter().filter_map(Result::ok).collect();
    let outcomes = service.send_batch_email(requests).await;
    assert_eq!(outcomes.len(), 19);
    for (index, outcome) in outcomes.iter().enumerate() {
        assert_eq!(outcome.index, index);
    }
    let failed = outcomes.iter().filter(|outcome| !outcome.is_sent()).count();
    assert_eq!(failed, 1, "the one 550 (the invalid address never got in)");
    let delivered = sink.wait_for_messages(18, WAIT).await.unwrap();
    assert_eq!(delivered.len(), 18);
    assert_eq!(store.len(), 19, "the refused address is not recorded");
    // 19 SMTP transactions; pooled connections carry several each.
    assert!(
        sink.connections() < 19,
        "connections are pooled: {}",
        sink.connections()
    );
}

#[tokio::test]
async fn an_idempotency_key_makes_a_repeat_a_no_op() {
    let Setup {
        sink,
        service,
        store,
    } = setup().await;
    let request = EmailRequest::new("user-1", "ann@example.com", "Once", "body")
        .unwrap()
        .with_idempotency_key("welcome-1");
    let first = service.send_email(request.clone()).await.unwrap();
    let second = service.send_email(request).await.unwrap();
    assert_eq!(first.id, second.id);
    assert_eq!(store.len(), 1);
    sink.wait_for_messages(1, WAIT).await.unwrap();
    assert_eq!(sink.command_count(SmtpCommand::MessageEnd), 1);

    // The first result of a failed send is returned too, without sending again.
    sink.fail_next(SmtpCommand::Rcpt, usize::MAX, Reply::permanent());
    let failing = EmailRequest::new("user-1", "ann@example.com", "Fails", "body")
        .unwrap()
        .with_idempotency_key("k2");
    assert!(service.send_email(failing.clone()).await.is_err());
    let again = service.send_email(failing).await.unwrap_err();
    assert!(
        matches!(again, NotificationError::PreviouslyFailed { .. }),
        "{again}"
    );
    assert_eq!(sink.command_count(SmtpCommand::Rcpt), 2);
}

#[tokio::test]
async fn starttls_is_required_never_skipped() {
    // The sink offers no STARTTLS: the channel refuses to send in clear.
    let sink = SmtpSink::start().await.unwrap();
    let channel = SmtpEmailChannel::new(
        SmtpConfig::starttls(sink.host())
            .with_port(sink.port())
            .with_from("noreply@example.com", None)
            .with_retry(ProviderRetryPolicy::none()),
    )
    .unwrap();
    let service = NotificationService::in_memory().with_email(Arc::new(channel));
    let error = service
        .send_email(EmailRequest::new("u", "ann@example.com", "Secret", "body").unwrap())
        .await
        .unwrap_err();
    assert!(error.is_permanent(), "{error:?}");
    assert_eq!(
        sink.command_count(SmtpCommand::Mail),
        0,
        "nothing was sent in clear"
    );
    assert_eq!(sink.message_count(), 0);
}

#[tokio::test]
async fn implicit_tls_against_a_plaintext_server_fails_without_sending() {
    let sink = SmtpSink::start().await.unwrap();
    let channel = SmtpEmailChannel::new(
        SmtpConfig::tls(sink.host())
            .with_port(sink.port())
            .with_from("noreply@example.com", None)
            .with_timeout(Duration::from_secs(2))
            .with_retry(ProviderRetryPolicy::none()),
    )
    .unwrap();
    let error = NotificationService::in_memory()
        .with_email(Arc::new(channel))
        .send_email(EmailRequest::new("u", "ann@example.com", "Secret", "body").unwrap())
        .await
        .unwrap_err();
    assert!(matches!(error, NotificationError::Smtp { .. }), "{error:?}");
    assert_eq!(sink.command_count(SmtpCommand::Mail), 0);
}
