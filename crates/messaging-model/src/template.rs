use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The channel a template renders for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TemplateKind {
    /// An email: subject plus body.
    Email,
    /// A text message.
    Sms,
    /// A push notification: title plus body.
    Push,
}

impl TemplateKind {
    /// The lowercase name, as stored and serialised.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Email => "email",
            Self::Sms => "sms",
            Self::Push => "push",
        }
    }
}

/// A stored template, rendered with handlebars by the `notification` crate.
///
/// ```
/// use messaging_model::{MessageTemplate, TemplateKind};
/// let template = MessageTemplate::new("welcome_email", TemplateKind::Email, "Hello {{name}}")
///     .with_subject("Welcome, {{name}}")
///     .with_variables(["name"]);
/// assert!(template.is_active);
/// assert_eq!(template.variables, vec!["name".to_string()]);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct MessageTemplate {
    /// Time-ordered unique id (UUIDv7).
    pub id: Uuid,
    /// Unique name the template is looked up by.
    pub name: String,
    /// The channel it renders for.
    pub kind: TemplateKind,
    /// The locale of this variant (`"en"`, `"pt-BR"`); `None` is the default variant
    /// that other locales fall back to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locale: Option<String>,
    /// Subject (email) or title (push); unused for SMS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// The body source.
    pub content: String,
    /// Variables the template declares it uses.
    #[serde(default)]
    pub variables: Vec<String>,
    /// Inactive templates are refused at send time.
    pub is_active: bool,
    /// Free-form extra data (locale, owner, …).
    #[serde(default)]
    pub metadata: serde_json::Value,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

impl MessageTemplate {
    /// A new active template with no subject and no declared variables.
    pub fn new(name: impl Into<String>, kind: TemplateKind, content: impl Into<String>) -> Self {
        let now = Utc::now();
        Self {
            id: crate::new_id(),
            name: name.into(),
            kind,
            locale: None,
            subject: None,
            content: content.into(),
            variables: Vec::new(),
            is_active: true,
            metadata: serde_json::Value::Object(Default::default()),
            created_at: now,
            updated_at: now,
        }
    }

    /// Sets the subject (email) or title (push).
    pub fn with_subject(mut self, subject: impl Into<String>) -> Self {
        self.subject = Some(subject.into());
        self
    }

    /// Makes this the variant for `locale`.
    pub fn with_locale(mut self, locale: impl Into<String>) -> Self {
        self.locale = Some(locale.into());
        self
    }

    /// Declares the variables the template uses.
    pub fn with_variables<I, S>(mut self, variables: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.variables = variables.into_iter().map(Into::into).collect();
        self
    }
}
