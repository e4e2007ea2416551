//! What callers ask the [`NotificationService`](crate::NotificationService) to
//! send: one request per channel ([`EmailRequest`], [`SmsRequest`],
//! [`PushRequest`], [`SystemNotificationRequest`]), whose [`Content`] is
//! either given or a [`TemplateRef`] to render.
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

/// An email: given, or rendered from a stored email template.
///
/// ```
/// use notification::{EmailRequest, TemplateRef};
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
/// # Ok::<(), notification::NotificationError>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct EmailRequest {
    /// The user it is for.
    pub user_id: String,
    /// The recipient, with its display name.
    pub to: EmailAddress,
    /// What it says.
    pub content: Content<EmailBody>,
    /// See [`EmailRequest::with_idempotency_key`].
    pub idempotency_key: Option<String>,
}

impl EmailRequest {
    /// An email to an address parsed already.
    pub fn to_address(
        user_id: impl Into<String>,
        to: EmailAddress,
        content: Content<EmailBody>,
    ) -> Self {
        Self {
            user_id: user_id.into(),
            to,
            content,
            idempotency_key: None,
        }
    }

    /// A plain-text email; refused when `to` is not an address.
    pub fn new(
        user_id: impl Into<String>,
        to: impl AsRef<str>,
        subject: impl Into<String>,
        text: impl Into<String>,
    ) -> Result<Self, NotificationError> {
        Self::given(user_id, to, subject, Some(text.into()), None)
    }

    /// An HTML-only email; refused when `to` is not an address.
    pub fn new_html(
        user_id: impl Into<String>,
        to: impl AsRef<str>,
        subject: impl Into<String>,
        html: impl Into<String>,
    ) -> Result<Self, NotificationError> {
        Self::given(user_id, to, subject, None, Some(html.into()))
    }

    /// An email rendered from `template`; refused when `to` is not an address.
    pub fn template(
        user_id: impl Into<String>,
        to: impl AsRef<str>,
        template: TemplateRef,
    ) -> Result<Self, NotificationError> {
        let to = EmailAddress::parse(to.as_ref())?;
        Ok(Self::to_address(user_id, to, Content::Template(template)))
    }

    fn given(
        user_id: impl Into<String>,
        to: impl AsRef<str>,
        subject: impl Into<String>,
        text: Option<String>,
        html: Option<String>,
    ) -> Result<Self, NotificationError> {
        let to = EmailAddress::parse(to.as_ref())?;
        let body = EmailBody {
            subject: subject.into(),
            text,
            html,
        };
        Ok(Self::to_address(user_id, to, Content::Given(body)))
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

    /// Makes a repeated send with the same key (for the same user) a no-op
    /// that returns the first result.
    pub fn with_idempotency_key(mut self, key: impl Into<String>) -> Self {
        self.idempotency_key = Some(key.into());
        self
    }
}

/// A text message: given, or rendered from a stored SMS template.
///
/// ```
/// use notification::{SmsRequest, NotificationError};
/// let request = SmsRequest::new("user-1", "+14155550100", "Your code is 1234")?;
/// assert_eq!(request.to.as_str(), "+14155550100");
/// assert!(matches!(
///     SmsRequest::new("user-1", "555", "hi"),
///     Err(NotificationError::InvalidPhoneNumber { .. })
/// ));
/// # Ok::<(), NotificationError>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct SmsRequest {
    /// The user it is for.
    pub user_id: String,
    /// The recipient.
    pub to: PhoneNumber,
    /// What it says: the text, or a template.
    pub content: Content<String>,
    /// See [`SmsRequest::with_idempotency_key`].
    pub idempotency_key: Option<String>,
}

impl SmsRequest {
    /// A text message to a number parsed already.
    pub fn to_number(
        user_id: impl Into<String>,
        to: PhoneNumber,
        content: Content<String>,
    ) -> Self {
        Self {
            user_id: user_id.into(),
            to,
            content,
            idempotency_key: None,
        }
    }

    /// A text message; refused when `to` is not an E.164 number.
    pub fn new(
        user_id: impl Into<String>,
        to: impl AsRef<str>,
        text: impl Into<String>,
    ) -> Result<Self, NotificationError> {
        let to = PhoneNumber::parse(to.as_ref())?;
        Ok(Self::to_number(user_id, to, Content::Given(text.into())))
    }

    /// A text message rendered from `template`; refused when `to` is not an
    /// E.164 number.
    pub fn template(
        user_id: impl Into<String>,
        to: impl AsRef<str>,
        template: TemplateRef,
    ) -> Result<Self, NotificationError> {
        let to = PhoneNumber::parse(to.as_ref())?;
        Ok(Self::to_number(user_id, to, Content::Template(template)))
    }

    /// See [`EmailRequest::with_idempotency_key`].
    pub fn with_idempotency_key(mut self, key: impl Into<String>) -> Self {
        self.idempotency_key = Some(key.into());
        self
    }
}

/// A push notification: given, or rendered from a stored push template
/// (subject: title, content: body).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct PushRequest {
    /// The user it is for.
    pub user_id: String,
    /// The device registration token.
    pub device_token: DeviceToken,
    /// What it says: title and body, or a template.
    pub content: Content<PushBody>,
    /// Extra key/value data for the app.
    pub data: BTreeMap<String, String>,
    /// See [`PushRequest::with_idempotency_key`].
    pub idempotency_key: Option<String>,
}

impl PushRequest {
    /// A push notification to a token parsed already.
    pub fn to_device(
        user_id: impl Into<String>,
        device_token: DeviceToken,
        content: Content<PushBody>,
    ) -> Self {
        Self {
            user_id: user_id.into(),
            device_token,
            content,
            data: BTreeMap::new(),
            idempotency_key: None,
        }
    }

    /// A push notification; refused when the token is not one.
    pub fn new(
        user_id: impl Into<String>,
        device_token: impl AsRef<str>,
        title: impl Into<String>,
        body: impl Into<String>,
    ) -> Result<Self, NotificationError> {
        let device_token = DeviceToken::parse(device_token.as_ref())?;
        let body = PushBody {
            title: title.into(),
            body: body.into(),
        };
        Ok(Self::to_device(user_id, device_token, Content::Given(body)))
    }

    /// A push notification rendered from `template`; refused when the token
    /// is not one.
    pub fn template(
        user_id: impl Into<String>,
        device_token: impl AsRef<str>,
        template: TemplateRef,
    ) -> Result<Self, NotificationError> {
        let device_token = DeviceToken::parse(device_token.as_ref())?;
        Ok(Self::to_device(
            user_id,
            device_token,
            Content::Template(template),
        ))
    }

    /// Adds one data entry.
    pub fn with_data(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.data.insert(key.into(), value.into());
        self
    }

    /// See [`EmailRequest::with_idempotency_key`].
    pub fn with_idempotency_key(mut self, key: impl Into<String>) -> Self {
        self.idempotency_key = Some(key.into());
        self
    }
}

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

    /// The recipient: address, phone number, device token, or the user of an
    /// in-app notification.
    pub fn recipient(&self) -> &str {
        match self {
            Self::Email(request) => request.to.address(),
            Self::Sms(request) => request.to.as_str(),
            Self::Push(request) => request.device_token.as_str(),
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
}

impl<F> Wire<F> {
    fn new<C>(
        user_id: String,
        content: Content<C>,
        idempotency_key: Option<String>,
        fields: impl FnOnce(Option<C>) -> F,
    ) -> Self {
        let (given, template) = match content {
            Content::Given(given) => (Some(given), None),
            Content::Template(template) => (None, Some(template)),
        };
        Self {
            user_id,
            fields: fields(given),
            template: template.as_ref().map(|template| template.name.clone()),
            locale: template
                .as_ref()
                .and_then(|template| template.locale.clone()),
            variables: template.map(|template| template.variables),
            idempotency_key,
        }
    }

    /// The content: the template when one is named (refused with given
    /// fields as well), else what `given` makes of the fields.
    fn content<C>(
        &self,
        given_fields: bool,
        given: impl FnOnce() -> Result<C, String>,
    ) -> Result<Content<C>, String> {
        match &self.template {
            Some(_) if given_fields => {
                Err("give either a template or the content fields, not both".to_owned())
            }
            Some(name) => Ok(Content::Template(TemplateRef {
                name: name.clone(),
                variables: self.variables.clone().unwrap_or_default(),
                locale: self.locale.clone(),
            })),
            None => given().map(Content::Given),
        }
    }
}

#[derive(Serialize, Deserialize)]
struct EmailFields {
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

impl Serialize for EmailRequest {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let request = self.clone();
        Wire::new(
            request.user_id,
            request.content,
            request.idempotency_key,
            |body: Option<EmailBody>| EmailFields {
                to: request.to.address().to_owned(),
                to_name: request.to.name().map(str::to_owned),
                subject: body.as_ref().map(|body| body.subject.clone()),
                text: body.as_ref().and_then(|body| body.text.clone()),
                html: body.and_then(|body| body.html),
            },
        )
        .serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for EmailRequest {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let wire = Wire::<EmailFields>::deserialize(deserializer)?;
        let fields = &wire.fields;
        let given_fields =
            fields.subject.is_some() || fields.text.is_some() || fields.html.is_some();
        let content = wire
            .content(given_fields, || match &fields.subject {
                None => Err("either a template or a subject is needed".to_owned()),
                Some(_) if fields.text.is_none() && fields.html.is_none() => {
                    Err("text or html is needed with a subject".to_owned())
                }
                Some(subject) => Ok(EmailBody {
                    subject: subject.clone(),
                    text: fields.text.clone(),
                    html: fields.html.clone(),
                }),
            })
            .map_err(serde::de::Error::custom)?;
        let mut to = EmailAddress::parse(&fields.to).map_err(serde::de::Error::custom)?;
        if let Some(name) = &fields.to_name {
            to = to.with_name(name);
        }
        let mut request = Self::to_address(wire.user_id, to, content);
        request.idempotency_key = wire.idempotency_key;
        Ok(request)
    }
}

#[derive(Serialize, Deserialize)]
struct SmsFields {
    to: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    text: Option<String>,
}

impl Serialize for SmsRequest {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let request = self.clone();
        Wire::new(
            request.user_id,
            request.content,
            request.idempotency_key,
            |text| SmsFields {
                to: request.to.as_str().to_owned(),
                text,
            },
        )
        .serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for SmsRequest {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let wire = Wire::<SmsFields>::deserialize(deserializer)?;
        let text = &wire.fields.text;
        let content = wire
            .content(text.is_some(), || {
                text.clone()
                    .ok_or_else(|| "either a template or a text is needed".to_owned())
            })
            .map_err(serde::de::Error::custom)?;
        let to = PhoneNumber::parse(&wire.fields.to).map_err(serde::de::Error::custom)?;
        let mut request = Self::to_number(wire.user_id, to, content);
        request.idempotency_key = wire.idempotency_key;
        Ok(request)
    }
}

#[derive(Serialize, Deserialize)]
struct PushFields {
    device_token: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    body: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    data: BTreeMap<String, String>,
}

impl Serialize for PushRequest {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let request = self.clone();
        Wire::new(
            request.user_id,
            request.content,
            request.idempotency_key,
            |body: Option<PushBody>| PushFields {
                device_token: request.device_token.as_str().to_owned(),
                title: body.as_ref().map(|body| body.title.clone()),
                body: body.map(|body| body.body),
                data: request.data,
            },
        )
        .serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for PushRequest {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let wire = Wire::<PushFields>::deserialize(deserializer)?;
        let fields = &wire.fields;
        let given_fields = fields.title.is_some() || fields.body.is_some();
        let content = wire
            .content(given_fields, || {
                if given_fields {
                    Ok(PushBody {
                        title: fields.title.clone().unwrap_or_default(),
                        body: fields.body.clone().unwrap_or_default(),
                    })
                } else {
                    Err("either a template or a title and body is needed".to_owned())
                }
            })
            .map_err(serde::de::Error::custom)?;
        let device_token =
            DeviceToken::parse(&fields.device_token).map_err(serde::de::Error::custom)?;
        let mut request = Self::to_device(wire.user_id, device_token, content);
        request.data = wire.fields.data;
        request.idempotency_key = wire.idempotency_key;
        Ok(request)
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
