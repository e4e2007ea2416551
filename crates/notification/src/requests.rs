//! What callers ask the [`NotificationService`](crate::NotificationService) to
//! send. Every request is plain serde data, so a worker can carry it in a
//! message as is.

use std::collections::BTreeMap;

use messaging_model::Notification;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::NotificationError;

/// Variables handed to a template: a JSON object.
pub type Variables = Map<String, Value>;

macro_rules! common_setters {
    () => {
        /// Makes a repeated send with the same key (for the same user) a no-op
        /// that returns the first result.
        pub fn with_idempotency_key(mut self, key: impl Into<String>) -> Self {
            self.idempotency_key = Some(key.into());
            self
        }
    };
}

macro_rules! template_setters {
    () => {
        /// Adds one template variable.
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

        /// Asks for this locale's variant (falling back to the language, then the default).
        pub fn with_locale(mut self, locale: impl Into<String>) -> Self {
            self.locale = Some(locale.into());
            self
        }
    };
}

/// An email with its subject and body given.
///
/// ```
/// use notification::EmailRequest;
/// let request = EmailRequest::new("user-1", "ann@example.com", "Hello", "Hi Ann")
///     .with_html("<p>Hi Ann</p>")
///     .with_idempotency_key("hello-ann");
/// assert_eq!(request.html.as_deref(), Some("<p>Hi Ann</p>"));
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct EmailRequest {
    /// The user it is for.
    pub user_id: String,
    /// The recipient's address.
    pub to: String,
    /// The recipient's display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_name: Option<String>,
    /// The subject.
    pub subject: String,
    /// The plain-text body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// The HTML body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub html: Option<String>,
    /// See [`EmailRequest::with_idempotency_key`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
}

impl EmailRequest {
    /// A plain-text email.
    pub fn new(
        user_id: impl Into<String>,
        to: impl Into<String>,
        subject: impl Into<String>,
        text: impl Into<String>,
    ) -> Self {
        Self {
            user_id: user_id.into(),
            to: to.into(),
            to_name: None,
            subject: subject.into(),
            text: Some(text.into()),
            html: None,
            idempotency_key: None,
        }
    }

    /// An HTML-only email.
    pub fn new_html(
        user_id: impl Into<String>,
        to: impl Into<String>,
        subject: impl Into<String>,
        html: impl Into<String>,
    ) -> Self {
        Self {
            text: None,
            ..Self::new(user_id, to, subject, "").with_html(html)
        }
    }

    /// Adds an HTML body (sent as multipart/alternative with the text).
    pub fn with_html(mut self, html: impl Into<String>) -> Self {
        self.html = Some(html.into());
        self
    }

    /// Sets the recipient's display name.
    pub fn with_to_name(mut self, name: impl Into<String>) -> Self {
        self.to_name = Some(name.into());
        self
    }

    common_setters!();
}

/// An email rendered from a stored template.
///
/// ```
/// use notification::TemplatedEmailRequest;
/// let request = TemplatedEmailRequest::new("user-1", "ann@example.com", "welcome_email")
///     .with_variable("name", "Ann")
///     .with_locale("pt-BR");
/// assert_eq!(request.variables["name"], "Ann");
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct TemplatedEmailRequest {
    /// The user it is for.
    pub user_id: String,
    /// The recipient's address.
    pub to: String,
    /// The recipient's display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_name: Option<String>,
    /// The template's name.
    pub template: String,
    /// The template's variables.
    #[serde(default)]
    pub variables: Variables,
    /// The locale wanted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locale: Option<String>,
    /// See [`TemplatedEmailRequest::with_idempotency_key`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
}

impl TemplatedEmailRequest {
    /// An email from `template`, without variables yet.
    pub fn new(
        user_id: impl Into<String>,
        to: impl Into<String>,
        template: impl Into<String>,
    ) -> Self {
        Self {
            user_id: user_id.into(),
            to: to.into(),
            to_name: None,
            template: template.into(),
            variables: Variables::new(),
            locale: None,
            idempotency_key: None,
        }
    }

    /// Sets the recipient's display name.
    pub fn with_to_name(mut self, name: impl Into<String>) -> Self {
        self.to_name = Some(name.into());
        self
    }

    template_setters!();
    common_setters!();
}

/// A text message with its text given.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct SmsRequest {
    /// The user it is for.
    pub user_id: String,
    /// The recipient, E.164 (`+14155550100`).
    pub to: String,
    /// The text.
    pub text: String,
    /// See [`SmsRequest::with_idempotency_key`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
}

impl SmsRequest {
    /// A text message.
    pub fn new(user_id: impl Into<String>, to: impl Into<String>, text: impl Into<String>) -> Self {
        Self {
            user_id: user_id.into(),
            to: to.into(),
            text: text.into(),
            idempotency_key: None,
        }
    }

    common_setters!();
}

/// A text message rendered from a stored template.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct TemplatedSmsRequest {
    /// The user it is for.
    pub user_id: String,
    /// The recipient, E.164.
    pub to: String,
    /// The template's name.
    pub template: String,
    /// The template's variables.
    #[serde(default)]
    pub variables: Variables,
    /// The locale wanted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locale: Option<String>,
    /// See [`TemplatedSmsRequest::with_idempotency_key`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
}

impl TemplatedSmsRequest {
    /// A text message from `template`.
    pub fn new(
        user_id: impl Into<String>,
        to: impl Into<String>,
        template: impl Into<String>,
    ) -> Self {
        Self {
            user_id: user_id.into(),
            to: to.into(),
            template: template.into(),
            variables: Variables::new(),
            locale: None,
            idempotency_key: None,
        }
    }

    template_setters!();
    common_setters!();
}

/// A push notification with its title and body given.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct PushRequest {
    /// The user it is for.
    pub user_id: String,
    /// The device registration token.
    pub device_token: String,
    /// The title.
    pub title: String,
    /// The body.
    pub body: String,
    /// Extra key/value data for the app.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub data: BTreeMap<String, String>,
    /// See [`PushRequest::with_idempotency_key`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
}

impl PushRequest {
    /// A push notification.
    pub fn new(
        user_id: impl Into<String>,
        device_token: impl Into<String>,
        title: impl Into<String>,
        body: impl Into<String>,
    ) -> Self {
        Self {
            user_id: user_id.into(),
            device_token: device_token.into(),
            title: title.into(),
            body: body.into(),
            data: BTreeMap::new(),
            idempotency_key: None,
        }
    }

    /// Adds one data entry.
    pub fn with_data(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.data.insert(key.into(), value.into());
        self
    }

    common_setters!();
}

/// A push notification rendered from a stored template (subject: title, content: body).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct TemplatedPushRequest {
    /// The user it is for.
    pub user_id: String,
    /// The device registration token.
    pub device_token: String,
    /// The template's name.
    pub template: String,
    /// The template's variables.
    #[serde(default)]
    pub variables: Variables,
    /// The locale wanted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locale: Option<String>,
    /// Extra key/value data for the app.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub data: BTreeMap<String, String>,
    /// See [`TemplatedPushRequest::with_idempotency_key`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
}

impl TemplatedPushRequest {
    /// A push notification from `template`.
    pub fn new(
        user_id: impl Into<String>,
        device_token: impl Into<String>,
        template: impl Into<String>,
    ) -> Self {
        Self {
            user_id: user_id.into(),
            device_token: device_token.into(),
            template: template.into(),
            variables: Variables::new(),
            locale: None,
            data: BTreeMap::new(),
            idempotency_key: None,
        }
    }

    /// Adds one data entry.
    pub fn with_data(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.data.insert(key.into(), value.into());
        self
    }

    template_setters!();
    common_setters!();
}

/// An in-app notification: only recorded in the store.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct SystemNotificationRequest {
    /// The user it is for.
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

    common_setters!();
}

/// One notification an event rule asks for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum NotificationAction {
    /// [`NotificationService::send_email`](crate::NotificationService::send_email).
    Email(EmailRequest),
    /// [`NotificationService::send_email_with_template`](crate::NotificationService::send_email_with_template).
    TemplatedEmail(TemplatedEmailRequest),
    /// [`NotificationService::send_sms`](crate::NotificationService::send_sms).
    Sms(SmsRequest),
    /// [`NotificationService::send_sms_with_template`](crate::NotificationService::send_sms_with_template).
    TemplatedSms(TemplatedSmsRequest),
    /// [`NotificationService::send_push`](crate::NotificationService::send_push).
    Push(PushRequest),
    /// [`NotificationService::send_push_with_template`](crate::NotificationService::send_push_with_template).
    TemplatedPush(TemplatedPushRequest),
    /// [`NotificationService::send_system_notification`](crate::NotificationService::send_system_notification).
    System(SystemNotificationRequest),
}

/// Evaluates `$body` with `$request` bound to the request inside `$action`,
/// whatever its kind: every request has a `user_id` and an `idempotency_key`.
macro_rules! with_request {
    ($action:expr, $request:ident => $body:expr) => {
        match $action {
            NotificationAction::Email($request) => $body,
            NotificationAction::TemplatedEmail($request) => $body,
            NotificationAction::Sms($request) => $body,
            NotificationAction::TemplatedSms($request) => $body,
            NotificationAction::Push($request) => $body,
            NotificationAction::TemplatedPush($request) => $body,
            NotificationAction::System($request) => $body,
        }
    };
}

impl NotificationAction {
    /// The user it is for.
    pub fn user_id(&self) -> &str {
        with_request!(self, request => &request.user_id)
    }

    /// The idempotency key, if the action sets one.
    pub fn idempotency_key(&self) -> Option<&str> {
        with_request!(self, request => request.idempotency_key.as_deref())
    }

    /// Replaces the idempotency key.
    pub fn with_idempotency_key(mut self, key: impl Into<String>) -> Self {
        let key = Some(key.into());
        with_request!(&mut self, request => request.idempotency_key = key);
        self
    }
}

/// The outcome of one recipient of a batch.
#[derive(Debug)]
#[non_exhaustive]
pub struct BatchOutcome {
    /// The position of the request in the batch.
    pub index: usize,
    /// Its recipient (address or phone number).
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
