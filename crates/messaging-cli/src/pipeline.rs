//! The notification pipeline the worker and the demo run: the notification
//! service with its channels and stores, attached to a messaging service.

use std::sync::Arc;

use messaging_core::{MessagingService, SubscribeOptions};
use notification::NotificationService;
use notification::channel::{
    EmailChannel, FailoverEmailChannel, FailoverPushChannel, FailoverSmsChannel, FcmConfig,
    FcmPushProvider, HttpClientConfig, PhoneNumber, PushChannel, SmsChannel, SmtpConfig,
    SmtpEmailChannel, StaticAccessToken, TwilioConfig, TwilioSmsProvider, WebhookConfig,
    WebhookPushProvider, WebhookSmsProvider,
};
use notification::digest::{DigestRule, Digests};
use notification::events::EventRules;
use notification::store::InMemorySuppressionStore;
use notification::store::{
    DigestStore, InMemoryDigestStore, InMemoryPreferenceStore, PreferenceStore,
};
use notification_store_postgres::{PostgresStore, PostgresStoreConfig, PostgresStoreError};

use crate::config::{self, Config, PushProvider, SmsProvider, WebhookProvider};
use crate::exit::CliError;

/// The notification side of the worker.
pub(crate) struct Pipeline {
    /// The service the listeners send through.
    pub(crate) notifications: Arc<NotificationService>,
    postgres: Option<PostgresStore>,
    /// The event rules, with the categories `[preferences]` gives them.
    rules: EventRules,
    /// `[[digests]]`.
    digest_rules: Vec<DigestRule>,
    digest_store: Arc<dyn DigestStore>,
}

impl Pipeline {
    /// Builds the stores and channels the configuration names; PostgreSQL is
    /// connected and migrated now, so a bad URL fails the start.
    pub(crate) async fn from_config(config: &Config) -> anyhow::Result<Self> {
        Self::build(config, None).await
    }

    /// Like [`Pipeline::from_config`], with this email channel instead of `[smtp]`.
    pub(crate) async fn build(
        config: &Config,
        email: Option<Arc<dyn EmailChannel>>,
    ) -> anyhow::Result<Self> {
        let mut preference_store: Option<Arc<dyn PreferenceStore>> = None;
        let mut digest_store: Option<Arc<dyn DigestStore>> = None;
        let (mut service, postgres) = match &config.database.url {
            Some(url) => {
                let store = connect_postgres(
                    url,
                    config.database.schema.as_deref(),
                    config.database.max_connections,
                )
                .await?;
                store
                    .migrate()
                    .await
                    .map_err(|error| postgres_error(url, error))?;
                let shared = Arc::new(store.clone());
                preference_store = Some(shared.clone());
                digest_store = Some(shared.clone());
                (
                    NotificationService::new(shared.clone(), shared.clone())
                        .with_suppressions(shared),
                    Some(store),
                )
            }
            None => (
                NotificationService::in_memory()
                    .with_suppressions(Arc::new(InMemorySuppressionStore::new())),
                None,
            ),
        };
        let email = match (email, &config.smtp) {
            (Some(channel), _) => Some(channel),
            (None, Some(smtp)) => Some(email_channel(smtp)?),
            (None, None) => None,
        };
        service = service.with_config(config.delivery.notification_config());
        if let Some(email) = email {
            service = service.with_email(email);
        }
        if let Some(sms) = &config.sms {
            service = service.with_sms(sms_chain(sms, &config.sms_chain)?);
        }
        if let Some(push) = &config.push {
            service = service.with_push(push_chain(push, &config.push_chain)?);
        }
        let mut rules = EventRules::defaults();
        if let Some(preferences) = &config.preferences {
            let store = preference_store.unwrap_or_else(|| {
                Arc::new(InMemoryPreferenceStore::new()) as Arc<dyn PreferenceStore>
            });
            service = service
                .with_preferences(store)
                .with_preference_policy(preferences.policy());
            if let Some(unsubscribe) = preferences.unsubscribe()? {
                service = service.with_unsubscribe(unsubscribe);
            }
            for (topic, category) in &preferences.topic_categories {
                rules = rules.with_category(topic, category);
            }
        }
        let digest_rules: Vec<DigestRule> = config.digests.iter().map(|d| d.rule()).collect();
        if let Some(rule) = digest_rules
            .iter()
            .find(|rule| rules.get(&rule.topic).is_some())
        {
            return Err(CliError::InvalidSetting {
                name: "digests.topic".into(),
                reason: format!(
                    "{} has an event rule already: a digest collects a topic of its own",
                    rule.topic
                ),
            }
            .into());
        }
        Ok(Self {
            notifications: Arc::new(service),
            postgres,
            rules,
            digest_rules,
            digest_store: digest_store
                .unwrap_or_else(|| Arc::new(InMemoryDigestStore::new()) as Arc<dyn DigestStore>),
        })
    }

    /// Installs the default templates that are missing, then subscribes the
    /// event listeners and notification request dispatchers (`user.registered`,
    /// `wallet.recharged`, `notification.email|sms|push`) with `options`.
    pub(crate) async fn attach(
        &self,
        messaging: &MessagingService,
        options: SubscribeOptions,
    ) -> anyhow::Result<()> {
        self.attach_limited(messaging, options, &Config::default())
            .await
    }

    /// [`attach`](Self::attach), each subscription with the `[[limits]]` of
    /// `config` that name its topic.
    pub(crate) async fn attach_limited(
        &self,
        messaging: &MessagingService,
        options: SubscribeOptions,
        config: &Config,
    ) -> anyhow::Result<()> {
        let rules = &self.rules;
        config.check_limits(&rules.topics().collect::<Vec<_>>())?;
        let mut limits = std::collections::BTreeMap::new();
        for topic in rules.topics() {
            limits.insert(topic.to_owned(), config.limits_for(topic)?);
        }
        self.notifications.install_default_templates().await?;
        self.notifications
            .listen_to_events_with_options(messaging, rules, |topic| {
                let mut options = options.clone();
                options.limits = limits.get(topic).cloned().unwrap_or_default();
                options
            })
            .await?;
        if !self.digest_rules.is_empty() {
            Digests::new(
                self.notifications.clone(),
                self.digest_store.clone(),
                self.digest_rules.clone(),
                messaging,
            )
            .listen(messaging, options)
            .await?;
        }
        Ok(())
    }

    /// The PostgreSQL pool, when the store is PostgreSQL.
    pub(crate) fn pool(&self) -> Option<sqlx::PgPool> {
        self.postgres.as_ref().map(|store| store.pool().clone())
    }

    /// Closes the store connections.
    pub(crate) async fn close(self) {
        if let Some(store) = self.postgres {
            store.close().await;
        }
    }
}

/// A PostgreSQL store, one connection checked.
pub(crate) async fn connect_postgres(
    url: &str,
    schema: Option<&str>,
    max_connections: Option<u32>,
) -> anyhow::Result<PostgresStore> {
    crate::exit::check_userinfo("--database-url", url)?;
    let mut store_config = PostgresStoreConfig::new(url).with_application_name("messaging");
    if let Some(schema) = schema {
        store_config = store_config.with_schema(schema);
    }
    if let Some(max) = max_connections {
        store_config = store_config.with_max_connections(max);
    }
    PostgresStore::connect(store_config)
        .await
        .map_err(|error| postgres_error(url, error))
}

fn postgres_error(url: &str, error: PostgresStoreError) -> anyhow::Error {
    match error {
        PostgresStoreError::Connect { .. } => CliError::Unreachable {
            what: "PostgreSQL",
            url: crate::exit::redact(url),
            source: Box::new(error),
        }
        .into(),
        PostgresStoreError::InvalidUrl { .. } | PostgresStoreError::InvalidSchemaName { .. } => {
            CliError::InvalidSetting {
                name: "database".into(),
                reason: error.to_string(),
            }
            .into()
        }
        other => other.into(),
    }
}

/// `[smtp]` alone, or with `[[smtp.fallback]]` relays: a failover channel
/// with a circuit breaker per relay.
fn email_channel(smtp: &config::SmtpConfig) -> anyhow::Result<Arc<dyn EmailChannel>> {
    let first = Arc::new(SmtpEmailChannel::new(smtp_config(smtp))?) as Arc<dyn EmailChannel>;
    if smtp.fallback.is_empty() {
        return Ok(first);
    }
    let mut providers = vec![(smtp.name.clone().unwrap_or_else(|| "smtp".into()), first)];
    for (i, fallback) in smtp.fallback.iter().enumerate() {
        let name = fallback
            .name
            .clone()
            .unwrap_or_else(|| format!("smtp-{}", i + 2));
        let channel =
            Arc::new(SmtpEmailChannel::new(smtp_config(fallback))?) as Arc<dyn EmailChannel>;
        providers.push((name, channel));
    }
    Ok(Arc::new(FailoverEmailChannel::new(
        providers,
        smtp.breaker.circuit_breaker(),
    )))
}

fn smtp_config(smtp: &config::SmtpConfig) -> SmtpConfig {
    let mut out = SmtpConfig::starttls(&smtp.host)
        .with_security(smtp.security)
        .with_from(&smtp.from, None)
        .with_timeout(smtp.timeout)
        .with_provider(smtp.provider);
    if let Some(port) = smtp.port {
        out = out.with_port(port);
    }
    if let (Some(user), Some(password)) = (&smtp.username, &smtp.password) {
        out = out.with_credentials(user, password);
    }
    out
}

fn http(timeout: std::time::Duration) -> HttpClientConfig {
    HttpClientConfig::default().with_timeout(timeout)
}

fn webhook(provider: &WebhookProvider) -> WebhookConfig {
    // `Config::check` made sure a webhook has its URL.
    let mut out = WebhookConfig::new(provider.url.clone().unwrap_or_default())
        .with_http(http(provider.timeout));
    if let Some(key) = &provider.api_key {
        out = out.with_bearer_token(key);
    }
    out
}

/// `[sms]` alone, or with `[[sms.fallback]]` providers: a failover channel
/// with a circuit breaker per provider.
fn sms_chain(
    first: &SmsProvider,
    chain: &config::ProviderChain<SmsProvider>,
) -> anyhow::Result<Arc<dyn SmsChannel>> {
    let channel = sms_channel(first)?;
    if chain.fallback.is_empty() {
        return Ok(channel);
    }
    let mut providers = vec![(chain.name.clone().unwrap_or_else(|| "sms".into()), channel)];
    for (i, (name, provider)) in chain.fallback.iter().enumerate() {
        let name = name.clone().unwrap_or_else(|| format!("sms-{}", i + 2));
        providers.push((name, sms_channel(provider)?));
    }
    Ok(Arc::new(FailoverSmsChannel::new(
        providers,
        chain.breaker.circuit_breaker(),
    )))
}

/// `[push]` alone, or with `[[push.fallback]]` providers, as [`sms_chain`].
fn push_chain(
    first: &PushProvider,
    chain: &config::ProviderChain<PushProvider>,
) -> anyhow::Result<Arc<dyn PushChannel>> {
    let channel = push_channel(first)?;
    if chain.fallback.is_empty() {
        return Ok(channel);
    }
    let mut providers = vec![(chain.name.clone().unwrap_or_else(|| "push".into()), channel)];
    for (i, (name, provider)) in chain.fallback.iter().enumerate() {
        let name = name.clone().unwrap_or_else(|| format!("push-{}", i + 2));
        providers.push((name, push_channel(provider)?));
    }
    Ok(Arc::new(FailoverPushChannel::new(
        providers,
        chain.breaker.circuit_breaker(),
    )))
}

fn sms_channel(provider: &SmsProvider) -> anyhow::Result<Arc<dyn SmsChannel>> {
    Ok(match provider {
        SmsProvider::Twilio(provider) => {
            let from = PhoneNumber::parse(&provider.from)?;
            let mut twilio = TwilioConfig::new(
                provider.account_sid.clone(),
                // `Config::check` made sure the token is there.
                provider.auth_token.clone().unwrap_or_default(),
                from,
            )
            .with_http(http(provider.timeout));
            if let Some(url) = &provider.url {
                twilio = twilio.with_base_url(url);
            }
            Arc::new(TwilioSmsProvider::new(twilio)?)
        }
        SmsProvider::Webhook(provider) => Arc::new(WebhookSmsProvider::new(webhook(provider))?),
    })
}

fn push_channel(provider: &PushProvider) -> anyhow::Result<Arc<dyn PushChannel>> {
    Ok(match provider {
        PushProvider::Fcm(provider) => {
            let token = StaticAccessToken::new(provider.api_key.clone().unwrap_or_default());
            let mut fcm = FcmConfig::new(provider.project_id.clone(), token)
                .with_http(http(provider.timeout));
            if let Some(url) = &provider.url {
                fcm = fcm.with_base_url(url);
            }
            Arc::new(FcmPushProvider::new(fcm)?)
        }
        PushProvider::Webhook(provider) => Arc::new(WebhookPushProvider::new(webhook(provider))?),
    })
}
