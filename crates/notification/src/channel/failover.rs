//! Several providers per channel, in order, each behind a [`CircuitBreaker`]:
//! [`FailoverEmailChannel`], [`FailoverSmsChannel`], [`FailoverPushChannel`].

use std::pin::Pin;
use std::sync::Arc;

use async_trait::async_trait;
use messaging_model::NotificationKind;
use tracing::{info, warn};

use super::{
    CircuitBreaker, CircuitBreakerConfig, Clock, EmailChannel, EmailMessage, PushChannel,
    PushMessage, SendReceipt, SmsChannel, SmsMessage, SystemClock, Transition,
};
use crate::NotificationError;

/// One provider that did not take a message: its name, why, and whether
/// that is transient.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ProviderFailure {
    /// The provider's configured name.
    pub provider: String,
    /// Its error, or why it was skipped (`circuit breaker open`).
    pub error: String,
    /// True when it may take it later.
    pub transient: bool,
}

/// `a: why; b: why`, for error messages.
pub(crate) fn describe_failures(failures: &[ProviderFailure]) -> String {
    failures
        .iter()
        .map(|f| format!("{}: {}", f.provider, f.error))
        .collect::<Vec<_>>()
        .join("; ")
}

/// True when `error` proves the provider did **not** accept the message, so
/// handing it to another provider cannot deliver it twice:
///
/// - an SMTP reply code (4xx or 5xx, at any step: a server that replies with
///   one has not taken the message), a connection that could not be opened, a
///   timeout before the message data was sent, an extension the server lacks;
/// - HTTP 429 or 5xx, or an HTTP provider that could not be connected to.
///
/// A timeout or a broken connection once the message was sent (SMTP data, an
/// HTTP request written) proves nothing: the provider may have accepted it.
pub fn proves_not_accepted(error: &NotificationError) -> bool {
    match error {
        NotificationError::Smtp { code: Some(_), .. } => true,
        #[cfg(feature = "smtp")]
        NotificationError::Smtp {
            code: None, source, ..
        } => super::email::smtp_source_proves_unsent(source.as_ref()),
        NotificationError::HttpStatus { status, .. } => {
            *status == 429 || (500..600).contains(status)
        }
        #[cfg(feature = "http")]
        NotificationError::HttpTransport {
            timeout: false,
            source,
            ..
        } => source
            .downcast_ref::<reqwest::Error>()
            .is_some_and(reqwest::Error::is_connect),
        NotificationError::AllProvidersFailed { .. } => true,
        NotificationError::ProviderFailed { .. } => false,
        _ => false,
    }
}

type Sending<'a> =
    Pin<Box<dyn std::future::Future<Output = Result<SendReceipt, NotificationError>> + Send + 'a>>;

/// A channel trait the failover core can call.
trait Deliver<M>: Send + Sync {
    fn deliver<'a>(&'a self, message: &'a M) -> Sending<'a>;
}

impl Deliver<EmailMessage> for dyn EmailChannel {
    fn deliver<'a>(&'a self, message: &'a EmailMessage) -> Sending<'a> {
        self.send_email(message)
    }
}

impl Deliver<SmsMessage> for dyn SmsChannel {
    fn deliver<'a>(&'a self, message: &'a SmsMessage) -> Sending<'a> {
        self.send_sms(message)
    }
}

impl Deliver<PushMessage> for dyn PushChannel {
    fn deliver<'a>(&'a self, message: &'a PushMessage) -> Sending<'a> {
        self.send_push(message)
    }
}

struct Member<C: ?Sized> {
    name: String,
    channel: Arc<C>,
    breaker: CircuitBreaker,
}

/// The ordered providers of one channel and the failover rule.
struct Failover<C: ?Sized> {
    kind: NotificationKind,
    label: String,
    members: Vec<Member<C>>,
}

impl<C: ?Sized> Failover<C> {
    fn new(
        kind: NotificationKind,
        providers: Vec<(String, Arc<C>)>,
        config: CircuitBreakerConfig,
        clock: Arc<dyn Clock>,
    ) -> Self {
        let label = providers
            .iter()
            .map(|(name, _)| name.as_str())
            .collect::<Vec<_>>()
            .join("|");
        let members: Vec<Member<C>> = providers
            .into_iter()
            .map(|(name, channel)| Member {
                name,
                channel,
                breaker: CircuitBreaker::with_clock(config, SharedClock(clock.clone())),
            })
            .collect();
        for member in &members {
            breaker_gauge(kind, &member.name, member.breaker.state());
        }
        Self {
            kind,
            label,
            members,
        }
    }

    fn note(&self, member: &Member<C>, transition: Option<Transition>) {
        let Some(t) = transition else { return };
        breaker_gauge(self.kind, &member.name, t.to);
        metrics::counter!(
            "notification_provider_breaker_transitions_total",
            "channel" => self.kind.as_str(),
            "provider" => member.name.clone(),
            "from" => t.from.as_str(),
            "to" => t.to.as_str(),
        )
        .increment(1);
        match t.to {
            super::BreakerState::Open => warn!(
                channel = self.kind.as_str(),
                provider = %member.name,
                from = t.from.as_str(),
                "circuit breaker opened: provider skipped until its cool-down has passed"
            ),
            _ => info!(
                channel = self.kind.as_str(),
                provider = %member.name,
                from = t.from.as_str(),
                to = t.to.as_str(),
                "circuit breaker changed state"
            ),
        }
    }

    async fn send<M>(&self, message: &M) -> Result<SendReceipt, NotificationError>
    where
        C: Deliver<M>,
        M: Sync,
    {
        let mut failures = Vec::new();
        for member in &self.members {
            match member.breaker.try_acquire() {
                Ok(transition) => self.note(member, transition),
                Err(open) => {
                    failures.push(ProviderFailure {
                        provider: member.name.clone(),
                        error: format!("circuit breaker open (probes in {:?})", open.retry_in),
                        transient: true,
                    });
                    continue;
                }
            }
            match member.channel.deliver(message).await {
                Ok(mut receipt) => {
                    self.note(member, member.breaker.on_success());
                    receipt.provider.clone_from(&member.name);
                    receipt.failovers = failures;
                    return Ok(receipt);
                }
                Err(error) => {
                    let transient = error.is_transient();
                    let transition = if transient {
                        member.breaker.on_failure()
                    } else {
                        member.breaker.on_neutral()
                    };
                    self.note(member, transition);
                    if !proves_not_accepted(&error) {
                        // It may have been taken: another provider could
                        // deliver it twice.
                        warn!(
                            channel = self.kind.as_str(),
                            provider = %member.name,
                            %error,
                            "not failed over: the provider may have accepted it"
                        );
                        return Err(NotificationError::ProviderFailed {
                            provider: member.name.clone(),
                            refused_before: failures,
                            source: Box::new(error),
                        });
                    }
                    warn!(
                        channel = self.kind.as_str(),
                        provider = %member.name,
                        %error,
                        "provider did not accept it; failing over"
                    );
                    failures.push(ProviderFailure {
                        provider: member.name.clone(),
                        error: error.to_string(),
                        transient,
                    });
                }
            }
        }
        Err(NotificationError::AllProvidersFailed {
            kind: self.kind,
            failures,
        })
    }

    fn states(&self) -> Vec<(String, super::BreakerState)> {
        self.members
            .iter()
            .map(|m| (m.name.clone(), m.breaker.state()))
            .collect()
    }
}

fn breaker_gauge(kind: NotificationKind, provider: &str, state: super::BreakerState) {
    metrics::gauge!(
        "notification_provider_breaker_state",
        "channel" => kind.as_str(),
        "provider" => provider.to_owned(),
    )
    .set(state.gauge());
}

/// A [`Clock`] shared by every breaker of a channel.
struct SharedClock(Arc<dyn Clock>);

impl Clock for SharedClock {
    fn now(&self) -> std::time::Instant {
        self.0.now()
    }
}

macro_rules! failover_channel {
    ($(#[$doc:meta])* $name:ident, $trait:ident, $message:ty, $method:ident, $kind:expr) => {
        $(#[$doc])*
        pub struct $name {
            inner: Failover<dyn $trait>,
        }

        impl std::fmt::Debug for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct(stringify!($name))
                    .field("providers", &self.inner.states())
                    .finish()
            }
        }

        impl $name {
            /// The providers in order of preference, each named (the name
            /// goes into the attempt log and the metrics), every breaker with
            /// `config`, on the system clock.
            pub fn new(
                providers: Vec<(String, Arc<dyn $trait>)>,
                config: CircuitBreakerConfig,
            ) -> Self {
                Self::with_clock(providers, config, SystemClock)
            }

            /// [`new`](Self::new) with the breakers on `clock`.
            pub fn with_clock(
                providers: Vec<(String, Arc<dyn $trait>)>,
                config: CircuitBreakerConfig,
                clock: impl Clock,
            ) -> Self {
                Self {
                    inner: Failover::new($kind, providers, config, Arc::new(clock)),
                }
            }

            /// Each provider's name and breaker state, in order.
            pub fn breaker_states(&self) -> Vec<(String, super::BreakerState)> {
                self.inner.states()
            }
        }

        #[async_trait]
        impl $trait for $name {
            async fn $method(&self, message: &$message) -> Result<SendReceipt, NotificationError> {
                self.inner.send(message).await
            }

            fn provider(&self) -> &str {
                &self.inner.label
            }
        }
    };
}

failover_channel!(
    /// Email through the first of several providers whose breaker lets it
    /// through, failing over to the next only on an error that proves the
    /// message was not accepted ([`proves_not_accepted`]): never after an
    /// accepted send, so failover cannot send twice. A transient failure
    /// counts against the provider's [`CircuitBreaker`]; when every provider
    /// refused or was skipped, the error is
    /// [`NotificationError::AllProvidersFailed`].
    ///
    /// The receipt names the provider that accepted it and lists the ones
    /// that refused it first ([`SendReceipt::failovers`]); an error that is not
    /// failed over is [`NotificationError::ProviderFailed`], naming its
    /// provider. The service logs one attempt per provider. Breaker states are the gauge
    /// `notification_provider_breaker_state{channel, provider}` (0 closed, 1
    /// half-open, 2 open) and transitions the counter
    /// `notification_provider_breaker_transitions_total{channel, provider,
    /// from, to}`, each also logged.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use notification::channel::{
    ///     CircuitBreakerConfig, EmailAddress, EmailChannel, EmailMessage, FailoverEmailChannel,
    ///     RecordingChannel, StubFailure,
    /// };
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let a = RecordingChannel::<EmailMessage>::new();
    /// let b = RecordingChannel::<EmailMessage>::new();
    /// a.fail_always(StubFailure::Transient); // 451: not accepted
    /// let channel = FailoverEmailChannel::new(
    ///     vec![("relay-a".into(), Arc::new(a.clone()) as Arc<dyn EmailChannel>),
    ///          ("relay-b".into(), Arc::new(b.clone()) as Arc<dyn EmailChannel>)],
    ///     CircuitBreakerConfig::default(),
    /// );
    /// let email = EmailMessage::new(EmailAddress::parse("ann@example.com").unwrap(), "Hi").with_text("Hello");
    /// let receipt = channel.send_email(&email).await.unwrap();
    /// assert_eq!(receipt.provider, "relay-b");
    /// assert_eq!(receipt.failovers[0].provider, "relay-a");
    /// assert_eq!((a.sent().len(), b.sent().len()), (0, 1));
    /// # }
    /// ```
    FailoverEmailChannel,
    EmailChannel,
    EmailMessage,
    send_email,
    NotificationKind::Email
);

failover_channel!(
    /// Text messages through several providers in order (Twilio, then a
    /// webhook provider, say), as [`FailoverEmailChannel`] does for email:
    /// failover only on HTTP 429/5xx or a provider that could not be
    /// connected to.
    FailoverSmsChannel,
    SmsChannel,
    SmsMessage,
    send_sms,
    NotificationKind::Sms
);

failover_channel!(
    /// Push notifications through several providers in order, as
    /// [`FailoverEmailChannel`] does for email.
    FailoverPushChannel,
    PushChannel,
    PushMessage,
    send_push,
    NotificationKind::Push
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::channel::{PhoneNumber, RecordingChannel, StubFailure};

    fn sms() -> SmsMessage {
        SmsMessage::new(PhoneNumber::parse("+15550100").unwrap(), "code 1234")
    }

    fn pair(
        config: CircuitBreakerConfig,
    ) -> (
        FailoverSmsChannel,
        RecordingChannel<SmsMessage>,
        RecordingChannel<SmsMessage>,
    ) {
        let twilio = RecordingChannel::<SmsMessage>::new();
        let webhook = RecordingChannel::<SmsMessage>::new();
        let channel = FailoverSmsChannel::new(
            vec![
                (
                    "twilio".into(),
                    Arc::new(twilio.clone()) as Arc<dyn SmsChannel>,
                ),
                (
                    "webhook".into(),
                    Arc::new(webhook.clone()) as Arc<dyn SmsChannel>,
                ),
            ],
            config,
        );
        (channel, twilio, webhook)
    }

    #[test]
    fn failover_channels_are_send_sync_trait_objects() {
        fn assert_send_sync<T: ?Sized + Send + Sync>() {}
        assert_send_sync::<FailoverEmailChannel>();
        assert_send_sync::<FailoverSmsChannel>();
        assert_send_sync::<FailoverPushChannel>();
        assert_send_sync::<dyn notification_store::SuppressionStore>();
        assert_send_sync::<dyn notification_store::DeliveryReportStore>();
    }

    #[tokio::test]
    async fn an_http_503_fails_over_and_a_400_does_not() {
        let (channel, twilio, webhook) = pair(CircuitBreakerConfig::default());
        twilio.fail_next(1, StubFailure::Transient); // HTTP 503
        let receipt = channel.send_sms(&sms()).await.unwrap();
        assert_eq!(receipt.provider, "webhook");
        assert_eq!(receipt.failovers.len(), 1);
        assert!(receipt.failovers[0].error.contains("503"), "{receipt:?}");
        assert_eq!((twilio.sent().len(), webhook.sent().len()), (0, 1));

        twilio.fail_next(1, StubFailure::Permanent); // HTTP 400: the next would refuse it too
        let error = channel.send_sms(&sms()).await.unwrap_err();
        let NotificationError::ProviderFailed {
            provider, source, ..
        } = &error
        else {
            panic!("{error:?}")
        };
        assert_eq!(provider, "twilio");
        assert!(
            matches!(**source, NotificationError::HttpStatus { status: 400, .. }),
            "{error:?}"
        );
        assert!(error.is_permanent());
        assert_eq!(webhook.sent().len(), 1, "not failed over");
        assert_eq!(channel.provider(), "twilio|webhook");
    }

    #[tokio::test]
    async fn every_provider_refusing_is_all_providers_failed_and_transient() {
        let (channel, twilio, webhook) = pair(CircuitBreakerConfig::default());
        twilio.fail_always(StubFailure::Transient);
        webhook.fail_always(StubFailure::Transient);
        let error = channel.send_sms(&sms()).await.unwrap_err();
        let NotificationError::AllProvidersFailed { kind, failures } = &error else {
            panic!("{error:?}")
        };
        assert_eq!(*kind, NotificationKind::Sms);
        let names: Vec<&str> = failures.iter().map(|f| f.provider.as_str()).collect();
        assert_eq!(names, ["twilio", "webhook"]);
        assert!(error.is_transient());
        assert!(error.to_string().contains("twilio: "), "{error}");
    }

    #[test]
    fn what_proves_a_message_was_not_accepted() {
        let http = |status| NotificationError::HttpStatus {
            provider: "webhook",
            status,
            body: String::new(),
            retry_after: None,
        };
        for status in [429, 500, 502, 503] {
            assert!(proves_not_accepted(&http(status)), "{status}");
        }
        for status in [400, 401, 404, 408, 422] {
            assert!(!proves_not_accepted(&http(status)), "{status}");
        }
        let smtp = |code| NotificationError::Smtp {
            code,
            transient: true,
            source: "x".into(),
        };
        assert!(proves_not_accepted(&smtp(Some(421))));
        assert!(proves_not_accepted(&smtp(Some(554))));
        assert!(
            !proves_not_accepted(&smtp(None)),
            "no reply code and no known step: it may have been taken"
        );
        assert!(!proves_not_accepted(&NotificationError::invalid_request(
            "x"
        )));
    }
}
