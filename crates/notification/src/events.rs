//! Event listeners: topic → notification rules, run as messaging subscriptions.
//!
//! [`NotificationService::listen_to_events`] subscribes to every topic of an
//! [`EventRules`] registry. For each message, the topic's [`EventRule`] turns
//! the payload into [`NotificationAction`]s, and each action is sent at most
//! once successfully (keyed by `topic:message-id:action-index`), so a
//! redelivered or replayed message retries only what failed.
//!
//! Failures go through the messaging retry and dead-letter path: a transient
//! failure (SMTP 4xx, HTTP 429/5xx, timeouts, store outage) returns
//! `HandlerError::retry` (or `retry_after` with the provider's `Retry-After`);
//! a permanent one (bad payload, missing template, SMTP 5xx, HTTP 4xx) returns
//! `HandlerError::permanent` and the message is dead-lettered at once.
//!
//! ## Payloads of the default rules
//!
//! | topic | payload | notifications |
//! |---|---|---|
//! | `user.registered` | [`UserRegistered`]: `{"user_id", "email", "name", "locale"?}` or `{"user_id", "email", "username", "locale"?}` (both: `name` is the one greeted) | email from the `welcome_email` template |
//! | `wallet.recharged` | [`WalletRecharged`]: `{"user_id", "email", "amount", "currency", "balance", "locale"?}` | system notification + email from the `recharge_email` template |
//! | `notification.email` | an [`EmailRequest`]: `{"user_id", "to", "to_name"?, "subject", "text"?, "html"?}` or `{"user_id", "to", "to_name"?, "template", "variables"?, "locale"?}` | one email |
//! | `notification.sms` | an [`SmsRequest`]: `{"user_id", "to", "text"}` or `{"user_id", "to", "template", "variables"?, "locale"?}` | one SMS |
//! | `notification.push` | a [`PushRequest`]: `{"user_id", "device_token", "title", "body", "data"?}` or `{"user_id", "device_token", "template", "variables"?, "locale"?, "data"?}` | one push notification |
//!
//! `user_id` may be a string or an integer; `amount` and `balance` a decimal
//! string (`"10.50"`, preferred: exact) or a number. Every request payload may
//! carry an `idempotency_key`. A payload whose recipient does not parse (an
//! address, an E.164 number, a device token) is an invalid payload.
//!
//! ## Adding a rule
//!
//! ```
//! use notification::events::EventRules;
//! use notification::{NotificationAction, NotificationError, SystemNotificationRequest};
//! use messaging_model::Message;
//!
//! let rules = EventRules::defaults().with_rule("order.shipped", |message: &Message| {
//!     let user_id = message.payload["user_id"].as_str().ok_or_else(|| NotificationError::InvalidPayload {
//!         topic: message.topic.to_string(),
//!         reason: "user_id missing".into(),
//!     })?;
//!     Ok(vec![NotificationAction::System(SystemNotificationRequest::new(user_id, "Shipped", "Your order is on its way"))])
//! });
//! assert!(rules.topics().any(|topic| topic == "order.shipped"));
//! ```

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use messaging_core::{HandlerError, MessageHandler, MessagingService, SubscribeOptions};
use messaging_model::{Message, MessageTemplate, NotificationStatus, TemplateKind, topics};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Value, json};
use tracing::{debug, warn};

use crate::requests::{
    EmailRequest, NotificationAction, PushRequest, SmsRequest, SystemNotificationRequest,
    TemplateRef, string_or_integer,
};
use crate::{NotificationError, NotificationService};

/// The template of the welcome email sent on `user.registered`.
pub const WELCOME_EMAIL_TEMPLATE: &str = "welcome_email";
/// The template of the email sent on `wallet.recharged`.
pub const RECHARGE_EMAIL_TEMPLATE: &str = "recharge_email";
/// The consumer group of [`NotificationService::listen_to_events`].
pub const LISTENER_GROUP: &str = "notification";

/// Turns one message into the notifications it calls for.
#[async_trait]
pub trait EventRule: Send + Sync + 'static {
    /// The notifications to send; an error (usually
    /// [`NotificationError::InvalidPayload`]) dead-letters the message when
    /// permanent and retries it when transient.
    async fn actions(
        &self,
        message: &Message,
    ) -> Result<Vec<NotificationAction>, NotificationError>;
}

#[async_trait]
impl<F> EventRule for F
where
    F: Fn(&Message) -> Result<Vec<NotificationAction>, NotificationError> + Send + Sync + 'static,
{
    async fn actions(
        &self,
        message: &Message,
    ) -> Result<Vec<NotificationAction>, NotificationError> {
        self(message)
    }
}

/// Topic → rule: what the listener subscribes to and what it sends.
#[derive(Clone, Default)]
pub struct EventRules {
    rules: BTreeMap<String, Arc<dyn EventRule>>,
    /// Topic → the category of its actions that name none.
    categories: BTreeMap<String, String>,
}

impl std::fmt::Debug for EventRules {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.rules.keys()).finish()
    }
}

impl EventRules {
    /// No rule.
    pub fn new() -> Self {
        Self::default()
    }

    /// The rules of the suite: `user.registered`, `wallet.recharged`,
    /// `notification.email`, `notification.sms`, `notification.push`.
    pub fn defaults() -> Self {
        Self::new()
            .with_rule(topics::USER_REGISTERED, user_registered)
            .with_rule(topics::WALLET_RECHARGED, wallet_recharged)
            .with_rule(topics::NOTIFICATION_EMAIL, notification_email)
            .with_rule(topics::NOTIFICATION_SMS, notification_sms)
            .with_rule(topics::NOTIFICATION_PUSH, notification_push)
    }

    /// Adds (or replaces) the rule of `topic`.
    pub fn with_rule(mut self, topic: impl Into<String>, rule: impl EventRule) -> Self {
        self.rules.insert(topic.into(), Arc::new(rule));
        self
    }

    /// Gives the actions of `topic`'s rule that name no category the category
    /// `category` (it wins over their template's).
    pub fn with_category(mut self, topic: impl Into<String>, category: impl Into<String>) -> Self {
        self.categories.insert(topic.into(), category.into());
        self
    }

    /// The category given to `topic`'s actions, if any.
    pub fn category(&self, topic: &str) -> Option<&str> {
        self.categories.get(topic).map(String::as_str)
    }

    /// Removes the rule of `topic`.
    pub fn without_rule(mut self, topic: &str) -> Self {
        self.rules.remove(topic);
        self
    }

    /// The topics with a rule, sorted.
    pub fn topics(&self) -> impl Iterator<Item = &str> {
        self.rules.keys().map(String::as_str)
    }

    /// The rule of `topic`.
    pub fn get(&self, topic: &str) -> Option<&Arc<dyn EventRule>> {
        self.rules.get(topic)
    }
}

impl NotificationService {
    /// Installs the missing default templates, then subscribes the default
    /// rules ([`EventRules::defaults`]) under the `notification` consumer group
    /// with the messaging service's default options.
    pub async fn listen_to_events(
        self: &Arc<Self>,
        messaging: &MessagingService,
    ) -> Result<(), NotificationError> {
        self.install_default_templates().await?;
        let options = messaging
            .subscribe_defaults()
            .clone()
            .with_group(LISTENER_GROUP);
        self.listen_to_events_with(messaging, &EventRules::defaults(), options)
            .await
    }

    /// Subscribes every rule of `rules` with `options`.
    pub async fn listen_to_events_with(
        self: &Arc<Self>,
        messaging: &MessagingService,
        rules: &EventRules,
        options: SubscribeOptions,
    ) -> Result<(), NotificationError> {
        self.listen_to_events_with_options(messaging, rules, |_| options.clone())
            .await
    }

    /// Subscribes every rule of `rules`, each with the options `options_for`
    /// gives its topic (flow limits of one topic, say).
    pub async fn listen_to_events_with_options(
        self: &Arc<Self>,
        messaging: &MessagingService,
        rules: &EventRules,
        options_for: impl Fn(&str) -> SubscribeOptions,
    ) -> Result<(), NotificationError> {
        // Only with preferences can a notification be held for quiet hours.
        let publisher = self
            .preference_store()
            .map(|_| Arc::new(MessagingService::new(messaging.backend().clone())));
        if publisher.is_some() {
            messaging
                .subscribe_with(
                    crate::deferred::DEFERRED_TOPIC,
                    options_for(crate::deferred::DEFERRED_TOPIC),
                    crate::deferred::DeferredHandler::new(self.clone()),
                )
                .await
                .map_err(|source| NotificationError::Subscribe {
                    topic: crate::deferred::DEFERRED_TOPIC.to_owned(),
                    source,
                })?;
        }
        for (topic, rule) in &rules.rules {
            let options = options_for(topic);
            let handler = RuleHandler {
                service: self.clone(),
                rule: rule.clone(),
                category: rules.categories.get(topic).cloned(),
                publisher: publisher.clone(),
            };
            messaging
                .subscribe_with(topic, options, handler)
                .await
                .map_err(|source| NotificationError::Subscribe {
                    topic: topic.clone(),
                    source,
                })?;
        }
        Ok(())
    }
}

/// Runs one rule for the messages of its topic.
struct RuleHandler {
    service: Arc<NotificationService>,
    rule: Arc<dyn EventRule>,
    /// The rule's category, for actions that name none.
    category: Option<String>,
    /// Publishes the delayed messages of notifications held for quiet hours.
    publisher: Option<Arc<MessagingService>>,
}

#[async_trait]
impl MessageHandler for RuleHandler {
    async fn handle(&self, message: Message) -> Result<(), HandlerError> {
        let actions = self
            .rule
            .actions(&message)
            .await
            .map_err(NotificationError::into_handler_error)?;
        let mut permanent = None;
        let mut transient = None;
        // Every action is tried even when one fails: the email does not wait on
        // the in-app notice, nor the other way round.
        for (index, action) in actions.into_iter().enumerate() {
            let key = match action.idempotency_key() {
                Some(key) => key.to_owned(),
                None => format!("{}:{}:{index}", message.topic, message.id),
            };
            let action = match &self.category {
                Some(category) => action.or_category(category),
                None => action,
            };
            let held = self.publisher.as_ref().map(|_| action.clone());
            match self.service.execute_once(action, &key).await {
                Ok(notification) if notification.status == NotificationStatus::Scheduled => {
                    // Held for quiet hours: the delayed message sends it (a
                    // redelivery publishes again; the row is sent once).
                    let at = notification
                        .metadata
                        .get("scheduled_for")
                        .and_then(|at| serde_json::from_value(at.clone()).ok());
                    if let (Some(publisher), Some(action), Some(at)) = (&self.publisher, held, at)
                        && let Err(error) =
                            crate::deferred::defer(publisher, action, &key, at).await
                    {
                        warn!(%error, index, "deferring a held notification failed; will retry");
                        transient.get_or_insert(error);
                    }
                }
                Ok(notification) => {
                    debug!(notification_id = %notification.id, status = notification.status.as_str(), "event notification done")
                }
                Err(error) if error.is_permanent() => {
                    warn!(%error, index, "event notification failed permanently");
                    permanent.get_or_insert(error);
                }
                Err(error) => {
                    warn!(%error, index, "event notification failed; will retry");
                    transient.get_or_insert(error);
                }
            }
        }
        match (permanent, transient) {
            (Some(error), _) | (None, Some(error)) => Err(error.into_handler_error()),
            (None, None) => Ok(()),
        }
    }
}

// ---- payloads -----------------------------------------------------------------

/// `user.registered`: a user finished registration.
///
/// The name to greet is `name`, or `username` when there is no `name` (what
/// services that publish `{"user_id", "username", "email"}` send).
///
/// ```
/// let event: notification::events::UserRegistered = serde_json::from_value(serde_json::json!(
///     {"user_id": 42, "email": "ann@example.com", "name": "Ann"}
/// )).unwrap();
/// assert_eq!(event.user_id, "42");
/// let event: notification::events::UserRegistered = serde_json::from_value(serde_json::json!(
///     {"user_id": "u1", "username": "ada", "email": "ada@example.com"}
/// )).unwrap();
/// assert_eq!((event.name.as_str(), event.username.as_deref()), ("ada", Some("ada")));
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "UserRegisteredPayload")]
#[non_exhaustive]
pub struct UserRegistered {
    /// The user (a string or an integer in the payload).
    pub user_id: String,
    /// Where the welcome email goes.
    pub email: String,
    /// The user's name: the payload's `name`, or its `username` without one.
    pub name: String,
    /// The user's login name, when the payload has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// The user's locale, for the template variant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locale: Option<String>,
}

/// [`UserRegistered`] as it comes: `name` or `username`, or both.
#[derive(Deserialize)]
struct UserRegisteredPayload {
    #[serde(deserialize_with = "string_or_integer")]
    user_id: String,
    email: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    locale: Option<String>,
}

impl TryFrom<UserRegisteredPayload> for UserRegistered {
    type Error = String;

    fn try_from(payload: UserRegisteredPayload) -> Result<Self, String> {
        let name = payload
            .name
            .or_else(|| payload.username.clone())
            .ok_or("missing field `name` (or `username`)")?;
        Ok(Self {
            user_id: payload.user_id,
            email: payload.email,
            name,
            username: payload.username,
            locale: payload.locale,
        })
    }
}

impl UserRegistered {
    /// A payload.
    pub fn new(
        user_id: impl Into<String>,
        email: impl Into<String>,
        name: impl Into<String>,
    ) -> Self {
        Self {
            user_id: user_id.into(),
            email: email.into(),
            name: name.into(),
            username: None,
            locale: None,
        }
    }
}

/// `wallet.recharged`: credit was added to a user's wallet.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct WalletRecharged {
    /// The user (a string or an integer in the payload).
    #[serde(deserialize_with = "string_or_integer")]
    pub user_id: String,
    /// Where the recharge email goes.
    pub email: String,
    /// The amount added.
    pub amount: Amount,
    /// The currency code (`"EUR"`).
    pub currency: String,
    /// The balance after the recharge.
    pub balance: Amount,
    /// The user's locale, for the template variant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locale: Option<String>,
}

impl WalletRecharged {
    /// A payload.
    pub fn new(
        user_id: impl Into<String>,
        email: impl Into<String>,
        amount: Amount,
        currency: impl Into<String>,
        balance: Amount,
    ) -> Self {
        Self {
            user_id: user_id.into(),
            email: email.into(),
            amount,
            currency: currency.into(),
            balance,
            locale: None,
        }
    }
}

/// A decimal amount, kept as written (`"10.50"` stays `"10.50"`). Accepts a
/// decimal string or a JSON number; serialises as a string.
///
/// ```
/// use notification::events::Amount;
/// assert_eq!(Amount::parse("10.50").unwrap().as_str(), "10.50");
/// assert!(Amount::parse("ten").is_err());
/// let from_number: Amount = serde_json::from_value(serde_json::json!(7.5)).unwrap();
/// assert_eq!(from_number.as_str(), "7.5");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Amount(String);

impl Amount {
    /// Parses `-?digits(.digits)?`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let digits = text.strip_prefix('-').unwrap_or(text);
        let (whole, fraction) = digits.split_once('.').unwrap_or((digits, "0"));
        let ok = !whole.is_empty()
            && !fraction.is_empty()
            && whole.bytes().all(|b| b.is_ascii_digit())
            && fraction.bytes().all(|b| b.is_ascii_digit());
        if ok {
            Ok(Self(text.to_owned()))
        } else {
            Err(format!("{text:?} is not a decimal amount"))
        }
    }

    /// The amount as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Amount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for Amount {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Amount {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match Value::deserialize(deserializer)? {
            Value::String(text) => Amount::parse(&text).map_err(serde::de::Error::custom),
            Value::Number(number) => {
                Amount::parse(&number.to_string()).map_err(serde::de::Error::custom)
            }
            other => Err(serde::de::Error::custom(format!(
                "expected a decimal amount, got {other}"
            ))),
        }
    }
}

fn payload<T: DeserializeOwned>(message: &Message) -> Result<T, NotificationError> {
    serde_json::from_value(message.payload.clone()).map_err(|error| {
        NotificationError::InvalidPayload {
            topic: message.topic.to_string(),
            reason: error.to_string(),
        }
    })
}

/// The one action a `notification.*` payload asks for: the payload is the
/// request itself (see [`crate::requests`] for its JSON form).
fn single_action<R>(message: &Message) -> Result<Vec<NotificationAction>, NotificationError>
where
    R: DeserializeOwned + Into<NotificationAction>,
{
    Ok(vec![payload::<R>(message)?.into()])
}

/// `user.registered` → the welcome email.
pub fn user_registered(message: &Message) -> Result<Vec<NotificationAction>, NotificationError> {
    let event: UserRegistered = payload(message)?;
    let mut template = TemplateRef::new(WELCOME_EMAIL_TEMPLATE)
        .with_variable("user_id", event.user_id.as_str())
        .with_variable("email", event.email.as_str())
        .with_variable("name", event.name.as_str());
    if let Some(username) = &event.username {
        template = template.with_variable("username", username.as_str());
    }
    template.locale = event.locale;
    let request =
        EmailRequest::template(&event.user_id, &event.email, template)?.with_to_name(&event.name);
    Ok(vec![NotificationAction::Email(request)])
}

/// `wallet.recharged` → a system notification and the recharge email.
pub fn wallet_recharged(message: &Message) -> Result<Vec<NotificationAction>, NotificationError> {
    let event: WalletRecharged = payload(message)?;
    let variables = json!({
        "user_id": event.user_id,
        "email": event.email,
        "amount": event.amount.as_str(),
        "currency": event.currency,
        "balance": event.balance.as_str(),
    });
    let notice = SystemNotificationRequest::new(
        &event.user_id,
        "Wallet recharged",
        format!(
            "Your wallet was recharged with {} {}. New balance: {} {}.",
            event.amount, event.currency, event.balance, event.currency
        ),
    )
    .with_metadata(json!({"amount": event.amount.as_str(), "currency": event.currency, "balance": event.balance.as_str()}));
    let mut template = TemplateRef::new(RECHARGE_EMAIL_TEMPLATE).with_variables(variables);
    template.locale = event.locale;
    let email = EmailRequest::template(&event.user_id, &event.email, template)?;
    Ok(vec![
        NotificationAction::System(notice),
        NotificationAction::Email(email),
    ])
}

/// `notification.email` → one email.
pub fn notification_email(message: &Message) -> Result<Vec<NotificationAction>, NotificationError> {
    single_action::<EmailRequest>(message)
}

/// `notification.sms` → one SMS.
pub fn notification_sms(message: &Message) -> Result<Vec<NotificationAction>, NotificationError> {
    single_action::<SmsRequest>(message)
}

/// `notification.push` → one push notification.
pub fn notification_push(message: &Message) -> Result<Vec<NotificationAction>, NotificationError> {
    single_action::<PushRequest>(message)
}

/// The templates the default rules use, for
/// [`NotificationService::install_default_templates`]: `welcome_email`
/// (variables `name`, `email`) and `recharge_email` (`amount`, `currency`,
/// `balance`). Replace them with [`NotificationService::create_template`] to
/// change the wording; the rules give every payload field as a variable.
pub fn default_templates() -> Vec<MessageTemplate> {
    vec![
        MessageTemplate::new(
            WELCOME_EMAIL_TEMPLATE,
            TemplateKind::Email,
            "Hi {{name}},\n\nWelcome aboard! Your account {{email}} is ready.\n",
        )
        .with_subject("Welcome, {{name}}!")
        .with_variables(["name", "email"]),
        MessageTemplate::new(
            RECHARGE_EMAIL_TEMPLATE,
            TemplateKind::Email,
            "Your wallet was recharged with {{amount}} {{currency}}.\nNew balance: {{balance}} {{currency}}.\n",
        )
        .with_subject("Wallet recharged: {{amount}} {{currency}}")
        .with_variables(["amount", "currency", "balance"]),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(topic: &str, payload: Value) -> Message {
        Message::new(topic, payload).unwrap()
    }

    #[test]
    fn email_events_take_one_form_or_the_other() {
        let direct = notification_email(&message(
            topics::NOTIFICATION_EMAIL,
            json!({"user_id": "u", "to": "a@example.com", "subject": "S", "text": "T"}),
        ))
        .unwrap();
        assert!(matches!(
            &direct[0],
            NotificationAction::Email(email) if email.content.template().is_none()
        ));
        let templated = notification_email(&message(
            topics::NOTIFICATION_EMAIL,
            json!({"user_id": 1, "to": "a@example.com", "template": "t", "variables": {"x": 1}}),
        ))
        .unwrap();
        assert!(matches!(
            &templated[0],
            NotificationAction::Email(email) if email.content.template().is_some()
        ));
        for bad in [
            json!({"user_id": "u", "to": "a@example.com"}),
            json!({"user_id": "u", "to": "a@example.com", "subject": "S"}),
            json!({"user_id": "u", "to": "a@example.com", "subject": "S", "template": "t", "text": "x"}),
            json!({"to": "a@example.com", "subject": "S", "text": "T"}),
        ] {
            let error =
                notification_email(&message(topics::NOTIFICATION_EMAIL, bad.clone())).unwrap_err();
            assert!(
                matches!(error, NotificationError::InvalidPayload { .. }),
                "{bad}"
            );
            assert!(error.is_permanent());
        }
    }

    #[test]
    fn wallet_recharged_asks_for_a_notice_and_an_email() {
        let actions = wallet_recharged(&message(
            topics::WALLET_RECHARGED,
            json!({"user_id": "u", "email": "a@example.com", "amount": "10.50", "currency": "EUR", "balance": 25}),
        ))
        .unwrap();
        match &actions[..] {
            [
                NotificationAction::System(notice),
                NotificationAction::Email(email),
            ] => {
                assert!(notice.content.contains("10.50 EUR"));
                assert_eq!(email.content.template().unwrap().variables["balance"], "25");
            }
            other => panic!("{other:?}"),
        }
        assert!(
            wallet_recharged(&message(topics::WALLET_RECHARGED, json!({"user_id": "u"}))).is_err()
        );
        // A recipient that does not parse refuses the whole event before any
        // action (no notice recorded for an event that goes to the dead
        // letters), with an error that says no retry helps.
        let bad = wallet_recharged(&message(
            topics::WALLET_RECHARGED,
            json!({"user_id": "u", "email": "not-an-address", "amount": "1", "currency": "EUR", "balance": "2"}),
        ))
        .unwrap_err();
        assert!(!bad.is_transient(), "{bad:?}");
    }

    #[test]
    fn user_registered_greets_the_name_or_else_the_username() {
        let welcome =
            |payload: Value| match &user_registered(&message(topics::USER_REGISTERED, payload))
                .unwrap()[..]
            {
                [NotificationAction::Email(email)] => email.clone(),
                other => panic!("{other:?}"),
            };
        // What the original service published (its flat stream fields).
        let email = welcome(json!({"user_id": "u1", "username": "Ada", "email": "a@example.com"}));
        assert_eq!(email.to.address(), "a@example.com");
        assert_eq!(email.to.name(), Some("Ada"));
        let variables = &email.content.template().unwrap().variables;
        assert_eq!(variables["name"], "Ada");
        assert_eq!(variables["username"], "Ada");
        // Both: `name` is the display name.
        let email = welcome(
            json!({"user_id": 7, "name": "Ada Lovelace", "username": "ada", "email": "a@example.com"}),
        );
        let variables = &email.content.template().unwrap().variables;
        assert_eq!(variables["name"], "Ada Lovelace");
        assert_eq!(variables["username"], "ada");
        assert_eq!(email.user_id, "7");

        let error = user_registered(&message(
            topics::USER_REGISTERED,
            json!({"user_id": "u1", "email": "a@example.com"}),
        ))
        .unwrap_err();
        assert!(error.is_permanent());
        assert!(
            error.to_string().contains("`name` (or `username`)"),
            "{error}"
        );
    }

    #[test]
    fn default_templates_are_valid() {
        let renderer = crate::template::TemplateRenderer::new();
        for template in default_templates() {
            renderer.check(&template).unwrap();
        }
    }
}
