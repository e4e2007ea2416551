//! What callers ask the [`NotificationService`](crate::NotificationService) to
//! send: one [`Request`] per channel ([`EmailRequest`], [`SmsRequest`],
//! [`PushRequest`]), whose [`Content`] is either given or a [`TemplateRef`]
//! to render, and the [`SystemNotificationRequest`] of in-app notifications.
//!
//! Recipients are parsed when the request is built ([`EmailAddress`],
//! [`PhoneNumber`], [`DeviceToken`]): a constructor given a bad one returns
//! the matching [`NotificationError`], so a request that exists has a valid
//! recipient.
//!
//! Every request is plain serde data, so a worker can carry it in a message as
//! is. Its JSON form is the payload of its `notification.*` topic (see
//! [`crate::events`]): the content's fields (`subject`, `text`, …) or the
//! template's (`template`, `variables`, `locale`) beside the recipient.

use std::collections::BTreeMap;

use messaging_model::Notification;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

use crate::NotificationError;
use crate::channel::{DeviceToken, EmailAddress, PhoneNumber};

/// Variables handed to a template: a JSON object.
pub type Variables = Map<String, Value>;

/// A stored template to render: its name, its variables and the locale wanted.
///
/// ```
/// use notification::TemplateRef;
/// let template = TemplateRef::new("welcome_email").with_variable("name", "Ann").with_locale("pt-BR");
/// assert_eq!(template.variables["name"], "Ann");
/// ```
#[derive(Debug, Clone, PartialEq, Default)]
#[non_exhaustive]
pub struct TemplateRef {
    /// The template's name.
    pub name: String,
    /// The template's variables.
    pub variables: Variables,
    /// The locale wanted (falling back to the language, then the default).
    pub locale: Option<String>,
}

impl TemplateRef {
    /// The template `name`, without variables yet.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            ..Self::default()
        }
    }

    /// Adds one variable.
    pub fn with_variable(mut self, name: impl Into<String>, value: impl Into<Value>) -> Self {
        self.variables.insert(name.into(), value.into());
        self
    }

    /// Adds every entry of a JSON object as a variable (other values are ignored).
    pub fn with_variables(mut self, variables: Value) -> Self {
        if let Value::Object(map) = variables {
            self.variables.extend(map);
        }
        self
    }

    /// Asks for this locale's variant.
    pub fn with_locale(mut self, locale: impl Into<String>) -> Self {
        self.locale = Some(locale.into());
        self
    }
}

/// What a message says: given as is (`C`: [`EmailBody`], the SMS text,
/// [`PushBody`]), or rendered from a stored template.
#[derive(Debug, Clone, PartialEq)]
pub enum Content<C> {
    /// The content as given.
    Given(C),
    /// A stored template to render.
    Template(TemplateRef),
}

impl<C> Content<C> {
    /// The template, when the content is one.
    pub fn template(&self) -> Option<&TemplateRef> {
        match self {
            Self::Template(template) => Some(template),
            Self::Given(_) => None,
        }
    }
}

/// The subject and bodies of an email given as is.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct EmailBody {
    /// The subject.
    pub subject: String,
    /// The plain-text body.
    pub text: Option<String>,
    /// The HTML body (sent as multipart/alternative with the text).
    pub html: Option<String>,
}

/// The title and body of a push notification given as is.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PushBody {
    /// The title.
    pub title: String,
    /// The body.
    pub body: String,
}

/// One notification to send on the channel `K` ([`Email`], [`Sms`], [`Push`]):
/// for a user, to a parsed recipient, with its content given or a template.
/// Use it by its names [`EmailRequest`], [`SmsRequest`] and [`PushRequest`].
///
/// ```
/// use notification::{EmailRequest, SmsRequest, TemplateRef};
/// let request = EmailRequest::new("user-1", "ann@example.com", "Hello", "Hi Ann")?
///     .with_html("<p>Hi Ann</p>")
///     .with_idempotency_key("hello-ann");
/// assert_eq!(request.to.address(), "ann@example.com");
/// let welcome = EmailRequest::template(
///     "user-1",
///     "ann@example.com",
///     TemplateRef::new("welcome_email").with_variable("name", "Ann"),
/// )?;
/// assert_eq!(welcome.content.template().unwrap().variables["name"], "Ann");
/// assert!(EmailRequest::new("user-1", "not an address", "Hello", "Hi").is_err());
/// assert!(matches!(
///     SmsRequest::new("user-1", "555", "hi"),
///     Err(notification::NotificationError::InvalidPhoneNumber { .. })
/// ));
/// # Ok::<(), notification::NotificationError>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Request<K: RequestKind> {
    /// The user it is for.
    pub user_id: String,
    /// The recipient: an [`EmailAddress`] (with its display name), a
    /// [`PhoneNumber`] or a [`DeviceToken`].
    pub to: K::Recipient,
    /// What it says.
    pub content: Content<K::Given>,
    /// What the channel carries besides the content: a push notification's
    /// key/value data for the app (nothing for email and SMS).
    pub extra: K::Extra,
    /// See [`Request::with_idempotency_key`].
    pub idempotency_key: Option<String>,
    /// See [`Request::with_category`].
    pub category: Option<String>,
}

/// An email: given ([`EmailBody`]) or rendered from a stored email template.
pub type EmailRequest = Request<Email>;
/// A text message: given (its text) or rendered from a stored SMS template.
pub type SmsRequest = Request<Sms>;
/// A push notification: given ([`PushBody`]) or rendered from a stored push
/// template (subject: title, content: body).
pub type PushRequest = Request<Push>;

impl<K: RequestKind> Request<K> {
    /// A request to a recipient parsed already.
    pub fn from_parts(
        user_id: impl Into<String>,
        to: K::Recipient,
        content: Content<K::Given>,
    ) -> Self {
        Self {
            user_id: user_id.into(),
            to,
            content,
            extra: K::Extra::default(),
            idempotency_key: None,
            category: None,
        }
    }

    /// A request rendered from `template`; refused when `to` does not parse
    /// as the channel's recipient.
    pub fn template(
        user_id: impl Into<String>,
        to: impl AsRef<str>,
        template: TemplateRef,
    ) -> Result<Self, NotificationError> {
        let to = K::parse_recipient(to.as_ref())?;
        Ok(Self::from_parts(user_id, to, Content::Template(template)))
    }

    fn given(
        user_id: impl Into<String>,
        to: impl AsRef<str>,
        given: K::Given,
    ) -> Result<Self, NotificationError> {
        let to = K::parse_recipient(to.as_ref())?;
        Ok(Self::from_parts(user_id, to, Content::Given(given)))
    }

    /// Makes a repeated send with the same key (for the same user) a no-op
    /// that returns the first result.
    pub fn with_idempotency_key(mut self, key: impl Into<String>) -> Self {
        self.idempotency_key = Some(key.into());
        self
    }

    /// Names the notification's category (`security`, `billing`,
    /// `marketing`, …), which the user's preferences are checked against. A
    /// request without one takes its template's (`metadata.category`), else its
    /// event rule's.
    pub fn with_category(mut self, category: impl Into<String>) -> Self {
        self.category = Some(category.into());
        self
    }
}

impl Request<Email> {
    /// A plain-text email; refused when `to` is not an address.
    pub fn new(
        user_id: impl Into<String>,
        to: impl AsRef<str>,
        subject: impl Into<String>,
        text: impl Into<String>,
    ) -> Result<Self, NotificationError> {
        let body = EmailBody {
            subject: subject.into(),
            text: Some(text.into()),
            html: None,
        };
        Self::given(user_id, to, body)
    }

    /// An HTML-only email; refused when `to` is not an address.
    pub fn new_html(
        user_id: impl Into<String>,
        to: impl AsRef<str>,
        subject: impl Into<String>,
        html: impl Into<String>,
    ) -> Result<Self, NotificationError> {
        let body = EmailBody {
            subject: subject.into(),
            text: None,
            html: Some(html.into()),
        };
        Self::given(user_id, to, body)
    }

    /// Adds an HTML body to given content (a template brings its own).
    pub fn with_html(mut self, html: impl Into<String>) -> Self {
        if let Content::Given(body) = &mut self.content {
            body.html = Some(html.into());
        }
        self
    }

    /// Sets the recipient's display name.
    pub fn with_to_name(mut self, name: impl Into<String>) -> Self {
        self.to = self.to.with_name(name);
        self
    }
}

impl Request<Sms> {
    /// A text message; refused when `to` is not an E.164 number.
    pub fn new(
        user_id: impl Into<String>,
        to: impl AsRef<str>,
        text: impl Into<String>,
    ) -> Result<Self, NotificationError> {
        Self::given(user_id, to, text.into())
    }
}

impl Request<Push> {
    /// A push notification; refused when the token is not one.
    pub fn new(
        user_id: impl Into<String>,
        device_token: impl AsRef<str>,
        title: impl Into<String>,
        body: impl Into<String>,
    ) -> Result<Self, NotificationError> {
        let body = PushBody {
            title: title.into(),
            body: body.into(),
        };
        Self::given(user_id, device_token, body)
    }

    /// Adds one data entry.
    pub fn with_data(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.extra.insert(key.into(), value.into());
        self
    }
}

/// What tells the channels of a [`Request`] apart: the recipient's type, the
/// given content's, what else the channel carries, and the request's JSON
/// fields. Implemented by [`Email`], [`Sms`] and [`Push`] only.
pub trait RequestKind: sealed::Sealed + std::fmt::Debug + Clone + PartialEq {
    /// The parsed recipient.
    type Recipient: std::fmt::Debug + Clone + PartialEq + Send + Sync;
    /// The content when given.
    type Given: std::fmt::Debug + Clone + PartialEq + Send + Sync;
    /// What else the channel carries.
    type Extra: std::fmt::Debug + Clone + PartialEq + Default + Send + Sync;
    #[doc(hidden)]
    type Fields: Serialize + DeserializeOwned;

    /// Parses the recipient.
    fn parse_recipient(text: &str) -> Result<Self::Recipient, NotificationError>;

    /// The recipient as text (the [`BatchOutcome::recipient`]).
    fn recipient_text(to: &Self::Recipient) -> &str;

    #[doc(hidden)]
    fn into_fields(
        to: &Self::Recipient,
        given: Option<&Self::Given>,
        extra: &Self::Extra,
    ) -> Self::Fields;

    /// The recipient, the extra, and the given content when the fields hold
    /// some (`Err` with why when they hold an incomplete one).
    #[doc(hidden)]
    fn from_fields(fields: Self::Fields) -> Result<FromFields<Self>, String>;
}

#[doc(hidden)]
pub type FromFields<K> = (
    <K as RequestKind>::Recipient,
    <K as RequestKind>::Extra,
    Option<Result<<K as RequestKind>::Given, String>>,
);

mod sealed {
    pub trait Sealed {}
    impl Sealed for super::Email {}
    impl Sealed for super::Sms {}
    impl Sealed for super::Push {}
}

/// The email channel of a [`Request`].
#[derive(Debug, Clone, PartialEq)]
pub enum Email {}

/// The SMS channel of a [`Request`].
#[derive(Debug, Clone, PartialEq)]
pub enum Sms {}

/// The push channel of a [`Request`].
#[derive(Debug, Clone, PartialEq)]
pub enum Push {}

/// An in-app notification: only recorded in the store.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct SystemNotificationRequest {
    /// The user it is for.
    #[serde(deserialize_with = "string_or_integer")]
    pub user_id: String,
    /// The title.
    pub title: String,
    /// The body.
    pub content: String,
    /// Extra data kept with it.
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub metadata: Value,
    /// See [`SystemNotificationRequest::with_idempotency_key`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
    /// See [`Request::with_category`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
}

impl SystemNotificationRequest {
    /// An in-app notification.
    pub fn new(
        user_id: impl Into<String>,
        title: impl Into<String>,
        content: impl Into<String>,
    ) -> Self {
        Self {
            user_id: user_id.into(),
            title: title.into(),
            content: content.into(),
            metadata: Value::Null,
            idempotency_key: None,
            category: None,
        }
    }

    /// Sets the extra data.
    pub fn with_metadata(mut self, metadata: Value) -> Self {
        self.metadata = metadata;
        self
    }

    /// See [`EmailRequest::with_idempotency_key`].
    pub fn with_idempotency_key(mut self, key: impl Into<String>) -> Self {
        self.idempotency_key = Some(key.into());
        self
    }

    /// See [`Request::with_category`].
    pub fn with_category(mut self, category: impl Into<String>) -> Self {
        self.category = Some(category.into());
        self
    }
}

/// One notification to send: what an event rule asks for, and what
/// [`NotificationService::send`](crate::NotificationService::send) takes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum NotificationAction {
    /// [`NotificationService::send_email`](crate::NotificationService::send_email).
    Email(EmailRequest),
    /// [`NotificationService::send_sms`](crate::NotificationService::send_sms).
    Sms(SmsRequest),
    /// [`NotificationService::send_push`](crate::NotificationService::send_push).
    Push(PushRequest),
    /// [`NotificationService::send_system_notification`](crate::NotificationService::send_system_notification).
    System(SystemNotificationRequest),
}

impl NotificationAction {
    /// The user it is for.
    pub fn user_id(&self) -> &str {
        match self {
            Self::Email(request) => &request.user_id,
            Self::Sms(request) => &request.user_id,
            Self::Push(request) => &request.user_id,
            Self::System(request) => &request.user_id,
        }
    }

    /// The idempotency key, if the action sets one.
    pub fn idempotency_key(&self) -> Option<&str> {
        self.key_slot().as_deref()
    }

    /// Replaces the idempotency key.
    pub fn with_idempotency_key(mut self, key: impl Into<String>) -> Self {
        *self.key_slot_mut() = Some(key.into());
        self
    }

    /// The category the action names itself, if any.
    pub fn category(&self) -> Option<&str> {
        self.category_slot().as_deref()
    }

    /// Sets the category, replacing the action's own.
    pub fn with_category(mut self, category: impl Into<String>) -> Self {
        *self.category_slot_mut() = Some(category.into());
        self
    }

    /// Sets the category when the action names none (an event rule's default).
    pub fn or_category(mut self, category: &str) -> Self {
        let slot = self.category_slot_mut();
        if slot.is_none() {
            *slot = Some(category.to_owned());
        }
        self
    }

    fn category_slot(&self) -> &Option<String> {
        match self {
            Self::Email(request) => &request.category,
            Self::Sms(request) => &request.category,
            Self::Push(request) => &request.category,
            Self::System(request) => &request.category,
        }
    }

    fn category_slot_mut(&mut self) -> &mut Option<String> {
        match self {
            Self::Email(request) => &mut request.category,
            Self::Sms(request) => &mut request.category,
            Self::Push(request) => &mut request.category,
            Self::System(request) => &mut request.category,
        }
    }

    /// The recipient: address, phone number, device token, or the user of an
    /// in-app notification.
    pub fn recipient(&self) -> &str {
        match self {
            Self::Email(request) => Email::recipient_text(&request.to),
            Self::Sms(request) => Sms::recipient_text(&request.to),
            Self::Push(request) => Push::recipient_text(&request.to),
            Self::System(request) => &request.user_id,
        }
    }

    fn key_slot(&self) -> &Option<String> {
        match self {
            Self::Email(request) => &request.idempotency_key,
            Self::Sms(request) => &request.idempotency_key,
            Self::Push(request) => &request.idempotency_key,
            Self::System(request) => &request.idempotency_key,
        }
    }

    fn key_slot_mut(&mut self) -> &mut Option<String> {
        match self {
            Self::Email(request) => &mut request.idempotency_key,
            Self::Sms(request) => &mut request.idempotency_key,
            Self::Push(request) => &mut request.idempotency_key,
            Self::System(request) => &mut request.idempotency_key,
        }
    }
}

impl From<EmailRequest> for NotificationAction {
    fn from(request: EmailRequest) -> Self {
        Self::Email(request)
    }
}

impl From<SmsRequest> for NotificationAction {
    fn from(request: SmsRequest) -> Self {
        Self::Sms(request)
    }
}

impl From<PushRequest> for NotificationAction {
    fn from(request: PushRequest) -> Self {
        Self::Push(request)
    }
}

impl From<SystemNotificationRequest> for NotificationAction {
    fn from(request: SystemNotificationRequest) -> Self {
        Self::System(request)
    }
}

/// The outcome of one recipient of a batch.
#[derive(Debug)]
#[non_exhaustive]
pub struct BatchOutcome {
    /// The position of the request in the batch.
    pub index: usize,
    /// Its recipient (see [`NotificationAction::recipient`]).
    pub recipient: String,
    /// The notification recorded, or why the send failed.
    pub result: Result<Notification, NotificationError>,
}

impl BatchOutcome {
    /// True when it was sent.
    pub fn is_sent(&self) -> bool {
        self.result.is_ok()
    }
}

// ---- JSON form ------------------------------------------------------------------
//
// A request is one flat JSON object: the user, the recipient fields of its
// channel, either the given content's fields or the template's, and the key.
// `Wire<F>` holds what every channel shares; `F` the fields of one channel.

#[derive(Serialize, Deserialize)]
struct Wire<F> {
    #[serde(deserialize_with = "string_or_integer")]
    user_id: String,
    #[serde(flatten)]
    fields: F,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    template: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    variables: Option<Variables>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    locale: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    idempotency_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    category: Option<String>,
}

impl<K: RequestKind> Serialize for Request<K> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let (given, template) = match &self.content {
            Content::Given(given) => (Some(given), None),
            Content::Template(template) => (None, Some(template)),
        };
        Wire {
            user_id: self.user_id.clone(),
            fields: K::into_fields(&self.to, given, &self.extra),
            template: template.map(|template| template.name.clone()),
            variables: template.map(|template| template.variables.clone()),
            locale: template.and_then(|template| template.locale.clone()),
            idempotency_key: self.idempotency_key.clone(),
            category: self.category.clone(),
        }
        .serialize(serializer)
    }
}

impl<'de, K: RequestKind> Deserialize<'de> for Request<K> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let wire = Wire::<K::Fields>::deserialize(deserializer)?;
        let (to, extra, given) = K::from_fields(wire.fields).map_err(serde::de::Error::custom)?;
        let content = match (wire.template, given) {
            (Some(_), Some(_)) => {
                Err("give either a template or the content fields, not both".to_owned())
            }
            (Some(name), None) => Ok(Content::Template(TemplateRef {
                name,
                variables: wire.variables.unwrap_or_default(),
                locale: wire.locale,
            })),
            (None, Some(given)) => given.map(Content::Given),
            (None, None) => Err("either a template or the content fields are needed".to_owned()),
        }
        .map_err(serde::de::Error::custom)?;
        Ok(Self {
            user_id: wire.user_id,
            to,
            content,
            extra,
            idempotency_key: wire.idempotency_key,
            category: wire.category,
        })
    }
}

#[doc(hidden)]
#[derive(Serialize, Deserialize)]
pub struct EmailFields {
    to: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    to_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    subject: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    text: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    html: Option<String>,
}

impl RequestKind for Email {
    type Recipient = EmailAddress;
    type Given = EmailBody;
    type Extra = ();
    type Fields = EmailFields;

    fn parse_recipient(text: &str) -> Result<EmailAddress, NotificationError> {
        EmailAddress::parse(text)
    }

    fn recipient_text(to: &EmailAddress) -> &str {
        to.address()
    }

    fn into_fields(to: &EmailAddress, given: Option<&EmailBody>, (): &()) -> EmailFields {
        EmailFields {
            to: to.address().to_owned(),
            to_name: to.name().map(str::to_owned),
            subject: given.map(|body| body.subject.clone()),
            text: given.and_then(|body| body.text.clone()),
            html: given.and_then(|body| body.html.clone()),
        }
    }

    fn from_fields(fields: EmailFields) -> Result<FromFields<Self>, String> {
        let mut to = EmailAddress::parse(&fields.to).map_err(|error| error.to_string())?;
        if let Some(name) = &fields.to_name {
            to = to.with_name(name);
        }
        let given = match (fields.subject, fields.text, fields.html) {
            (None, None, None) => None,
            (None, _, _) => Some(Err("a subject is needed with a text or html".to_owned())),
            (Some(_), None, None) => Some(Err("text or html is needed with a subject".to_owned())),
            (Some(subject), text, html) => Some(Ok(EmailBody {
                subject,
                text,
                html,
            })),
        };
        Ok((to, (), given))
    }
}

#[doc(hidden)]
#[derive(Serialize, Deserialize)]
pub struct SmsFields {
    to: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    text: Option<String>,
}

impl RequestKind for Sms {
    type Recipient = PhoneNumber;
    type Given = String;
    type Extra = ();
    type Fields = SmsFields;

    fn parse_recipient(text: &str) -> Result<PhoneNumber, NotificationError> {
        PhoneNumber::parse(text)
    }

    fn recipient_text(to: &PhoneNumber) -> &str {
        to.as_str()
    }

    fn into_fields(to: &PhoneNumber, given: Option<&String>, (): &()) -> SmsFields {
        SmsFields {
            to: to.as_str().to_owned(),
            text: given.cloned(),
        }
    }

    fn from_fields(fields: SmsFields) -> Result<FromFields<Self>, String> {
        let to = PhoneNumber::parse(&fields.to).map_err(|error| error.to_string())?;
        Ok((to, (), fields.text.map(Ok)))
    }
}

#[doc(hidden)]
#[derive(Serialize, Deserialize)]
pub struct PushFields {
    device_token: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    body: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    data: BTreeMap<String, String>,
}

impl RequestKind for Push {
    type Recipient = DeviceToken;
    type Given = PushBody;
    type Extra = BTreeMap<String, String>;
    type Fields = PushFields;

    fn parse_recipient(text: &str) -> Result<DeviceToken, NotificationError> {
        DeviceToken::parse(text)
    }

    fn recipient_text(to: &DeviceToken) -> &str {
        to.as_str()
    }

    fn into_fields(
        to: &DeviceToken,
        given: Option<&PushBody>,
        data: &BTreeMap<String, String>,
    ) -> PushFields {
        PushFields {
            device_token: to.as_str().to_owned(),
            title: given.map(|body| body.title.clone()),
            body: given.map(|body| body.body.clone()),
            data: data.clone(),
        }
    }

    fn from_fields(fields: PushFields) -> Result<FromFields<Self>, String> {
        let to = DeviceToken::parse(&fields.device_token).map_err(|error| error.to_string())?;
        let given = (fields.title.is_some() || fields.body.is_some()).then(|| {
            Ok(PushBody {
                title: fields.title.unwrap_or_default(),
                body: fields.body.unwrap_or_default(),
            })
        });
        Ok((to, fields.data, given))
    }
}

/// A user id in a payload: a non-empty string, or an integer.
pub(crate) fn string_or_integer<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<String, D::Error> {
    match Value::deserialize(deserializer)? {
        Value::String(text) if !text.is_empty() => Ok(text),
        Value::Number(number) if number.is_i64() || number.is_u64() => Ok(number.to_string()),
        other => Err(serde::de::Error::custom(format!(
            "expected a non-empty string or an integer, got {other}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_request_is_its_topic_payload_in_json() {
        let email = EmailRequest::new("u", "ann@example.com", "Hi", "there")
            .unwrap()
            .with_to_name("Ann");
        let json = serde_json::to_value(&email).unwrap();
        assert_eq!(
            json,
            json!({"user_id": "u", "to": "ann@example.com", "to_name": "Ann", "subject": "Hi", "text": "there"})
        );
        assert_eq!(serde_json::from_value::<EmailRequest>(json).unwrap(), email);

        let sms = SmsRequest::template(
            "u",
            "+14155550100",
            TemplateRef::new("code")
                .with_variable("code", 1)
                .with_locale("fr"),
        )
        .unwrap();
        let json = serde_json::to_value(&sms).unwrap();
        assert_eq!(
            json,
            json!({"user_id": "u", "to": "+14155550100", "template": "code", "variables": {"code": 1}, "locale": "fr"})
        );
        assert_eq!(serde_json::from_value::<SmsRequest>(json).unwrap(), sms);

        let push = NotificationAction::from(
            PushRequest::new("u", "device-1", "T", "B")
                .unwrap()
                .with_data("order", "7")
                .with_idempotency_key("k"),
        );
        let json = serde_json::to_value(&push).unwrap();
        assert_eq!(json["kind"], "push");
        assert_eq!(json["data"]["order"], "7");
        assert_eq!(
            serde_json::from_value::<NotificationAction>(json).unwrap(),
            push
        );
    }

    #[test]
    fn a_payload_with_a_bad_recipient_or_both_forms_is_refused() {
        for bad in [
            json!({"user_id": "u", "to": "nope", "subject": "S", "text": "T"}),
            json!({"user_id": "u", "to": "a@example.com", "subject": "S", "template": "t"}),
            json!({"user_id": "", "to": "a@example.com", "subject": "S", "text": "T"}),
        ] {
            assert!(
                serde_json::from_value::<EmailRequest>(bad.clone()).is_err(),
                "{bad}"
            );
        }
        assert!(
            serde_json::from_value::<PushRequest>(
                json!({"user_id": "u", "device_token": "a b", "title": "T"})
            )
            .is_err()
        );
    }
}
