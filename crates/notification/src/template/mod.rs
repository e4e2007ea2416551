//! Handlebars templates: checked when created, compiled once, rendered strictly.
//!
//! * Syntax: `{{variable}}`, `{{user.name}}`, `{{#if vip}}…{{else}}…{{/if}}`,
//!   `{{#unless}}`, `{{#each items}}{{name}}{{/each}}`, `{{#with}}`, and the
//!   built-in helpers `lookup eq ne gt gte lt lte and or not len`. Partials,
//!   decorators, custom helpers and unescaped output (`{{{x}}}`, `{{& x}}`) are
//!   refused.
//! * Strict: every declared variable must be given and not `null`, and a path
//!   that does not resolve is an error; a template never renders blanks.
//! * Escaping: the body of an HTML email template is HTML-escaped; subjects,
//!   text bodies, SMS and push are not escaped (they are not markup).
//! * Values are data, never template code: a value holding `{{…}}` is printed
//!   as is, not evaluated.
//!
//! ```
//! use messaging_model::{MessageTemplate, TemplateKind};
//! use notification::template::{MessageTemplateExt, TemplateRenderer};
//! use serde_json::json;
//!
//! let renderer = TemplateRenderer::new();
//! let template = MessageTemplate::new("receipt", TemplateKind::Email,
//!         "<p>Hi {{name}}</p>{{#each items}}<li>{{this}}</li>{{/each}}")
//!     .with_subject("Receipt for {{name}}")
//!     .with_variables(["name", "items"])
//!     .html();
//! renderer.check(&template).unwrap();
//! let rendered = renderer
//!     .render(&template, &json!({"name": "<Ann>", "items": ["a&b"]}))
//!     .unwrap();
//! assert_eq!(rendered.subject.as_deref(), Some("Receipt for <Ann>"));
//! assert_eq!(rendered.html.as_deref(), Some("<p>Hi &lt;Ann&gt;</p><li>a&amp;b</li>"));
//!
//! // A missing variable is an error, never a blank.
//! assert!(renderer.render(&template, &json!({"items": []})).is_err());
//! ```

mod check;

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, RwLock};

use chrono::{DateTime, Utc};
use handlebars::{Context, Handlebars, RenderContext, RenderErrorReason, Renderable, Template};
use messaging_model::{MessageTemplate, TemplateKind};
use serde_json::Value;
use uuid::Uuid;

use crate::NotificationError;

/// Metadata key of an email template's body format: `"html"` or `"text"` (the default).
pub const FORMAT_KEY: &str = "format";
/// Metadata key of the plain-text alternative of an HTML email template.
pub const TEXT_ALTERNATIVE_KEY: &str = "text";

/// Longest template name accepted, in bytes.
pub const MAX_TEMPLATE_NAME_LEN: usize = 128;

/// Email-template settings kept in [`MessageTemplate::metadata`].
///
/// ```
/// use messaging_model::{MessageTemplate, TemplateKind};
/// use notification::template::MessageTemplateExt;
/// let template = MessageTemplate::new("news", TemplateKind::Email, "<h1>{{title}}</h1>")
///     .html()
///     .with_text_alternative("{{title}}");
/// assert!(template.is_html());
/// assert_eq!(template.text_alternative(), Some("{{title}}"));
/// ```
pub trait MessageTemplateExt: Sized {
    /// Marks the body as HTML: rendered with HTML escaping, sent as `text/html`.
    fn html(self) -> Self;
    /// Adds a plain-text alternative to an HTML email (sent as multipart/alternative).
    fn with_text_alternative(self, source: impl Into<String>) -> Self;
    /// True when the body is HTML.
    fn is_html(&self) -> bool;
    /// The plain-text alternative source, if any.
    fn text_alternative(&self) -> Option<&str>;
}

impl MessageTemplateExt for MessageTemplate {
    fn html(mut self) -> Self {
        set_metadata(&mut self.metadata, FORMAT_KEY, Value::from("html"));
        self
    }

    fn with_text_alternative(mut self, source: impl Into<String>) -> Self {
        set_metadata(
            &mut self.metadata,
            TEXT_ALTERNATIVE_KEY,
            Value::from(source.into()),
        );
        self
    }

    fn is_html(&self) -> bool {
        self.metadata.get(FORMAT_KEY).and_then(Value::as_str) == Some("html")
    }

    fn text_alternative(&self) -> Option<&str> {
        self.metadata
            .get(TEXT_ALTERNATIVE_KEY)
            .and_then(Value::as_str)
    }
}

fn set_metadata(metadata: &mut Value, key: &str, value: Value) {
    if !metadata.is_object() {
        *metadata = Value::Object(Default::default());
    }
    if let Value::Object(map) = metadata {
        map.insert(key.to_owned(), value);
    }
}

/// What a template rendered to.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct RenderedTemplate {
    /// The subject (email) or title (push).
    pub subject: Option<String>,
    /// The plain-text body (text email, text alternative, SMS, push body).
    pub text: Option<String>,
    /// The HTML body (HTML email).
    pub html: Option<String>,
}

/// The sources a compiled template was made from, compared on every render so
/// a changed template is never served from the cache.
#[derive(PartialEq)]
struct Sources {
    id: Uuid,
    updated_at: DateTime<Utc>,
    subject: Option<String>,
    content: String,
    text: Option<String>,
    html: bool,
    variables: Vec<String>,
    is_active: bool,
}

impl Sources {
    fn of(template: &MessageTemplate) -> Self {
        Self {
            id: template.id,
            updated_at: template.updated_at,
            subject: template.subject.clone(),
            content: template.content.clone(),
            text: template.text_alternative().map(str::to_owned),
            html: template.is_html(),
            variables: template.variables.clone(),
            is_active: template.is_active,
        }
    }

    fn matches(&self, template: &MessageTemplate) -> bool {
        self.id == template.id
            && self.updated_at == template.updated_at
            && self.content == template.content
            && self.subject == template.subject
            && self.text.as_deref() == template.text_alternative()
            && self.html == template.is_html()
            && self.variables == template.variables
            && self.is_active == template.is_active
    }
}

struct Compiled {
    locale: Option<String>,
    sources: Sources,
    subject: Option<Template>,
    content: Template,
    text: Option<Template>,
}

/// Checks, compiles, caches and renders templates.
///
/// Compiled templates are cached by name and locale. The cache is checked
/// against the template handed to [`render`](Self::render) on every call, so an
/// updated template (in this process or another) is recompiled, never served
/// stale; [`invalidate`](Self::invalidate) drops an entry at once.
pub struct TemplateRenderer {
    escaped: Handlebars<'static>,
    plain: Handlebars<'static>,
    cache: RwLock<HashMap<String, Vec<Arc<Compiled>>>>,
    max_rendered_bytes: usize,
}

/// Largest output one part of a template (subject, body, text alternative) may
/// render to by default: 1 MiB. A loop over the variables can multiply them
/// (`{{#each items}}…{{../currency}}{{/each}}`), so the output is bounded while
/// it is written, not measured afterwards.
pub const DEFAULT_MAX_RENDERED_BYTES: usize = 1024 * 1024;

/// A handlebars output that refuses to grow past a limit.
struct BoundedOutput {
    text: String,
    limit: usize,
    exceeded: bool,
}

impl handlebars::Output for BoundedOutput {
    fn write(&mut self, segment: &str) -> Result<(), std::io::Error> {
        if self.text.len() + segment.len() > self.limit {
            self.exceeded = true;
            return Err(std::io::Error::other("rendered output over the limit"));
        }
        self.text.push_str(segment);
        Ok(())
    }
}

impl std::fmt::Debug for TemplateRenderer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TemplateRenderer")
            .field("cached", &self.cached())
            .finish_non_exhaustive()
    }
}

impl Default for TemplateRenderer {
    fn default() -> Self {
        Self::new()
    }
}

impl TemplateRenderer {
    /// A renderer with an empty cache.
    pub fn new() -> Self {
        let mut escaped = Handlebars::new();
        escaped.set_strict_mode(true);
        escaped.register_escape_fn(handlebars::html_escape);
        let mut plain = Handlebars::new();
        plain.set_strict_mode(true);
        plain.register_escape_fn(handlebars::no_escape);
        Self {
            escaped,
            plain,
            cache: RwLock::new(HashMap::new()),
            max_rendered_bytes: DEFAULT_MAX_RENDERED_BYTES,
        }
    }

    /// Sets the largest output one part of a template may render to (default
    /// [`DEFAULT_MAX_RENDERED_BYTES`]); past it rendering fails with the
    /// permanent [`NotificationError::RenderedTooLarge`].
    ///
    /// ```
    /// use messaging_model::{MessageTemplate, TemplateKind};
    /// use notification::NotificationError;
    /// use notification::template::TemplateRenderer;
    /// use serde_json::json;
    ///
    /// let renderer = TemplateRenderer::new().with_max_rendered_bytes(16);
    /// let template = MessageTemplate::new("t", TemplateKind::Sms, "{{#each items}}{{this}}{{/each}}")
    ///     .with_variables(["items"]);
    /// let many = json!({"items": vec!["x"; 100]});
    /// assert!(matches!(
    ///     renderer.render(&template, &many),
    ///     Err(NotificationError::RenderedTooLarge { limit: 16, .. })
    /// ));
    /// ```
    pub fn with_max_rendered_bytes(mut self, max_rendered_bytes: usize) -> Self {
        self.max_rendered_bytes = max_rendered_bytes;
        self
    }

    /// Checks a template before it is stored: its name and locale, the parts its
    /// channel needs, its syntax, and that the variables it declares are exactly
    /// those it uses.
    pub fn check(&self, template: &MessageTemplate) -> Result<(), NotificationError> {
        compile(template).map(drop)
    }

    /// Renders `template` with `variables` (a JSON object).
    ///
    /// Refuses inactive templates; every declared variable must be present and
    /// not `null`.
    pub fn render(
        &self,
        template: &MessageTemplate,
        variables: &Value,
    ) -> Result<RenderedTemplate, NotificationError> {
        if !template.is_active {
            return Err(NotificationError::TemplateInactive {
                name: template.name.clone(),
                locale: template.locale.clone(),
            });
        }
        let Some(data) = variables.as_object() else {
            return Err(NotificationError::invalid_request(format!(
                "variables of template {:?} must be a JSON object",
                template.name
            )));
        };
        let missing: Vec<String> = template
            .variables
            .iter()
            .filter(|name| data.get(name.as_str()).is_none_or(Value::is_null))
            .cloned()
            .collect();
        if !missing.is_empty() {
            return Err(NotificationError::MissingVariables {
                name: template.name.clone(),
                missing,
            });
        }
        let compiled = self.compiled(template)?;
        // Only the declared variables reach the template: `{{#each this}}`,
        // `{{lookup this "secret"}}` or `{{#with this}}` can read nothing else.
        let declared: serde_json::Map<String, Value> = template
            .variables
            .iter()
            .filter_map(|name| data.get(name).map(|value| (name.clone(), value.clone())))
            .collect();
        let context = Context::from(Value::Object(declared));
        let limit = self.max_rendered_bytes;
        let part = |registry: &Handlebars<'static>,
                    part: &Template|
         -> Result<String, NotificationError> {
            let mut render_context = RenderContext::new(None);
            let mut out = BoundedOutput {
                text: String::new(),
                limit,
                exceeded: false,
            };
            match part.render(registry, &context, &mut render_context, &mut out) {
                Ok(()) => Ok(out.text),
                Err(_) if out.exceeded => Err(NotificationError::RenderedTooLarge {
                    name: template.name.clone(),
                    limit,
                }),
                Err(error) => Err(render_error(&template.name, error)),
            }
        };
        let subject = match &compiled.subject {
            Some(subject) => Some(single_line(&part(&self.plain, subject)?)),
            None => None,
        };
        let mut rendered = RenderedTemplate {
            subject,
            ..RenderedTemplate::default()
        };
        if compiled.sources.html {
            rendered.html = Some(part(&self.escaped, &compiled.content)?);
            if let Some(text) = &compiled.text {
                rendered.text = Some(part(&self.plain, text)?);
            }
        } else {
            rendered.text = Some(part(&self.plain, &compiled.content)?);
        }
        Ok(rendered)
    }

    /// Drops the compiled template with this name and locale (`None`: the
    /// default variant) from the cache.
    pub fn invalidate(&self, name: &str, locale: Option<&str>) {
        let mut cache = self
            .cache
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(variants) = cache.get_mut(name) {
            variants.retain(|compiled| compiled.locale.as_deref() != locale);
            if variants.is_empty() {
                cache.remove(name);
            }
        }
    }

    /// Drops every compiled template.
    pub fn clear(&self) {
        self.cache
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clear();
    }

    /// How many compiled templates are cached.
    pub fn cached(&self) -> usize {
        self.cache
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .values()
            .map(Vec::len)
            .sum()
    }

    fn compiled(&self, template: &MessageTemplate) -> Result<Arc<Compiled>, NotificationError> {
        {
            let cache = self
                .cache
                .read()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            if let Some(compiled) = cache.get(&template.name).and_then(|variants| {
                variants
                    .iter()
                    .find(|compiled| compiled.locale == template.locale)
            }) && compiled.sources.matches(template)
            {
                return Ok(compiled.clone());
            }
        }
        let compiled = Arc::new(compile(template)?);
        let mut cache = self
            .cache
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let variants = cache.entry(template.name.clone()).or_default();
        variants.retain(|cached| cached.locale != template.locale);
        variants.push(compiled.clone());
        Ok(compiled)
    }
}

fn render_error(name: &str, error: handlebars::RenderError) -> NotificationError {
    if let RenderErrorReason::MissingVariable(path) = error.reason() {
        return NotificationError::MissingVariables {
            name: name.to_owned(),
            missing: vec![
                path.clone()
                    .unwrap_or_else(|| "(a helper's value)".to_owned()),
            ],
        };
    }
    NotificationError::Render {
        name: name.to_owned(),
        reason: error.to_string(),
    }
}

/// A subject or title on one line: CR, LF and other control characters become
/// spaces, so a value can never start a new header.
pub(crate) fn single_line(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// Checks a name: 1 to 128 bytes of `[A-Za-z0-9._-]`.
pub(crate) fn check_name(name: &str) -> Result<(), NotificationError> {
    let ok = !name.is_empty()
        && name.len() <= MAX_TEMPLATE_NAME_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(NotificationError::InvalidTemplate {
            name: name.to_owned(),
            reason: "the name must be 1 to 128 characters of letters, digits, '.', '_' and '-'"
                .to_owned(),
        })
    }
}

/// Checks a locale tag (`en`, `pt-BR`, `zh-Hant-TW`): letters, digits and `-`.
pub(crate) fn check_locale(name: &str, locale: Option<&str>) -> Result<(), NotificationError> {
    let Some(locale) = locale else { return Ok(()) };
    let ok = !locale.is_empty()
        && locale.len() <= 35
        && locale.split('-').all(|part| {
            !part.is_empty() && part.len() <= 8 && part.bytes().all(|b| b.is_ascii_alphanumeric())
        });
    if ok {
        Ok(())
    } else {
        Err(NotificationError::InvalidTemplate {
            name: name.to_owned(),
            reason: format!(
                "invalid locale {locale:?} (expected a tag such as \"en\" or \"pt-BR\")"
            ),
        })
    }
}

fn compile(template: &MessageTemplate) -> Result<Compiled, NotificationError> {
    let name = &template.name;
    check_name(name)?;
    check_locale(name, template.locale.as_deref())?;
    let invalid = |reason: String| NotificationError::InvalidTemplate {
        name: name.clone(),
        reason,
    };
    let needs_subject = matches!(template.kind, TemplateKind::Email | TemplateKind::Push);
    let subject_source = match (&template.subject, needs_subject) {
        (Some(subject), true) if !subject.trim().is_empty() => Some(subject.as_str()),
        (_, true) => {
            let what = if template.kind == TemplateKind::Email {
                "subject"
            } else {
                "title (subject)"
            };
            return Err(invalid(format!(
                "a {} template needs a {what}",
                template.kind.as_str()
            )));
        }
        (_, false) => None,
    };
    if template.content.trim().is_empty() {
        return Err(invalid("the content is empty".to_owned()));
    }
    let html = template.is_html();
    if html && template.kind != TemplateKind::Email {
        return Err(invalid("only email templates can be HTML".to_owned()));
    }
    if let Some(format) = template.metadata.get(FORMAT_KEY)
        && format
            .as_str()
            .is_none_or(|format| format != "html" && format != "text")
    {
        return Err(invalid(format!(
            "metadata.{FORMAT_KEY} must be \"html\" or \"text\""
        )));
    }

    let mut used = BTreeSet::new();
    let mut part = |label: &str, source: &str| -> Result<Template, NotificationError> {
        let (compiled, variables) = check::used_variables(source)
            .map_err(|reason| invalid(format!("{label}: {reason}")))?;
        used.extend(variables);
        Ok(compiled)
    };
    let subject = subject_source
        .map(|source| part("subject", source))
        .transpose()?;
    let content = part("content", &template.content)?;
    let text = match template.text_alternative() {
        Some(source) if html => Some(part("text alternative", source)?),
        Some(_) => {
            return Err(invalid(
                "a text alternative needs an HTML body (metadata.format = \"html\")".to_owned(),
            ));
        }
        None => None,
    };

    let declared: BTreeSet<String> = template.variables.iter().cloned().collect();
    if declared.len() != template.variables.len() {
        return Err(invalid("a variable is declared twice".to_owned()));
    }
    let undeclared: Vec<String> = used.difference(&declared).cloned().collect();
    let unused: Vec<String> = declared.difference(&used).cloned().collect();
    if !undeclared.is_empty() || !unused.is_empty() {
        return Err(NotificationError::TemplateVariableMismatch {
            name: name.clone(),
            undeclared,
            unused,
        });
    }
    Ok(Compiled {
        locale: template.locale.clone(),
        sources: Sources::of(template),
        subject,
        content,
        text,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sms(content: &str, variables: &[&str]) -> MessageTemplate {
        MessageTemplate::new("code_sms", TemplateKind::Sms, content)
            .with_variables(variables.iter().copied())
    }

    #[test]
    fn a_template_reads_only_the_variables_it_declares() {
        let renderer = TemplateRenderer::new();
        let variables = json!({"name": "Ann", "secret": "hunter2", "api_key": "k-123"});
        for source in [
            "{{#each this}}{{@key}}={{this}};{{/each}}",
            "{{#with this}}{{#each this}}{{this}}{{/each}}{{/with}}",
            "{{name}}{{#each this}}{{@key}}{{/each}}",
        ] {
            let declared: &[&str] = if source.contains("{{name}}") {
                &["name"]
            } else {
                &[]
            };
            let template = sms(source, declared);
            renderer.check(&template).unwrap();
            let rendered = renderer.render(&template, &variables);
            let text = format!("{rendered:?}");
            assert!(
                !text.contains("hunter2") && !text.contains("k-123") && !text.contains("secret"),
                "{source}: {text}"
            );
        }
        // `lookup` of an undeclared variable finds nothing to read.
        let template = sms("{{lookup this \"secret\"}}", &[]);
        if renderer.check(&template).is_ok() {
            let rendered = renderer.render(&template, &variables);
            assert!(!format!("{rendered:?}").contains("hunter2"), "{rendered:?}");
        }
    }

    #[test]
    fn output_multiplied_by_a_loop_is_bounded_and_permanent() {
        let renderer = TemplateRenderer::new();
        let template = sms(
            "{{#each items}}{{this}} {{../currency}}\n{{/each}}",
            &["items", "currency"],
        );
        // About 0.5 MiB of variables that once rendered to 195 MiB.
        let variables = json!({
            "items": vec![1; 500],
            "currency": "€".repeat(1000),
        });
        let error = renderer.render(&template, &variables).unwrap_err();
        assert!(
            matches!(
                error,
                NotificationError::RenderedTooLarge {
                    limit: DEFAULT_MAX_RENDERED_BYTES,
                    ..
                }
            ),
            "{error:?}"
        );
        assert!(error.is_permanent());
        // Below the limit the same template renders.
        let small = json!({"items": [1, 2], "currency": "EUR"});
        assert_eq!(
            renderer.render(&template, &small).unwrap().text.as_deref(),
            Some("1 EUR\n2 EUR\n")
        );
    }

    #[test]
    fn renders_conditions_and_loops() {
        let renderer = TemplateRenderer::new();
        let template = sms(
            "{{#if vip}}Dear {{name}}{{else}}Hi {{name}}{{/if}}: {{#each codes}}{{this}}{{#unless @last}}, {{/unless}}{{/each}}",
            &["vip", "name", "codes"],
        );
        let rendered = renderer
            .render(
                &template,
                &json!({"vip": true, "name": "Ann", "codes": [1, 2, 3]}),
            )
            .unwrap();
        assert_eq!(rendered.text.as_deref(), Some("Dear Ann: 1, 2, 3"));
    }

    #[test]
    fn text_is_not_escaped_and_html_is() {
        let renderer = TemplateRenderer::new();
        let text = sms("Hi {{name}}", &["name"]);
        let rendered = renderer.render(&text, &json!({"name": "<b>&"})).unwrap();
        assert_eq!(rendered.text.as_deref(), Some("Hi <b>&"));

        let html = MessageTemplate::new("h", TemplateKind::Email, "<p>{{name}}</p>")
            .with_subject("For {{name}}")
            .with_variables(["name"])
            .html()
            .with_text_alternative("Hi {{name}}");
        let rendered = renderer
            .render(&html, &json!({"name": "<script>x</script>"}))
            .unwrap();
        assert_eq!(
            rendered.html.as_deref(),
            Some("<p>&lt;script&gt;x&lt;/script&gt;</p>")
        );
        assert_eq!(rendered.text.as_deref(), Some("Hi <script>x</script>"));
        assert_eq!(rendered.subject.as_deref(), Some("For <script>x</script>"));
    }

    #[test]
    fn values_are_never_evaluated_as_template_code() {
        let renderer = TemplateRenderer::new();
        let template = sms("Hello {{name}}", &["name"]);
        let rendered = renderer
            .render(
                &template,
                &json!({"name": "{{secret}} {{#each x}}y{{/each}}"}),
            )
            .unwrap();
        assert_eq!(
            rendered.text.as_deref(),
            Some("Hello {{secret}} {{#each x}}y{{/each}}")
        );
    }

    #[test]
    fn missing_and_null_variables_are_errors() {
        let renderer = TemplateRenderer::new();
        let template = sms("{{a}} {{b}} {{c}}", &["a", "b", "c"]);
        let error = renderer
            .render(&template, &json!({"a": 1, "b": null}))
            .unwrap_err();
        match error {
            NotificationError::MissingVariables { missing, .. } => assert_eq!(missing, ["b", "c"]),
            other => panic!("{other:?}"),
        }
        let nested = sms("{{user.name}}", &["user"]);
        let error = renderer.render(&nested, &json!({"user": {}})).unwrap_err();
        assert!(
            matches!(error, NotificationError::MissingVariables { ref missing, .. } if missing == &["user.name"]),
            "{error}"
        );
    }

    #[test]
    fn subjects_stay_on_one_line() {
        let renderer = TemplateRenderer::new();
        let template = MessageTemplate::new("e", TemplateKind::Email, "body")
            .with_subject("Hi {{name}}")
            .with_variables(["name"]);
        let rendered = renderer
            .render(&template, &json!({"name": "x\r\nBcc: victim@example.com"}))
            .unwrap();
        assert_eq!(
            rendered.subject.as_deref(),
            Some("Hi x  Bcc: victim@example.com")
        );
    }

    #[test]
    fn checks_declared_against_used_variables() {
        let renderer = TemplateRenderer::new();
        let error = renderer
            .check(&sms("{{a}} {{b}}", &["a", "z"]))
            .unwrap_err();
        match error {
            NotificationError::TemplateVariableMismatch {
                undeclared, unused, ..
            } => {
                assert_eq!(undeclared, ["b"]);
                assert_eq!(unused, ["z"]);
            }
            other => panic!("{other:?}"),
        }
        assert!(renderer.check(&sms("{{#if a}}", &["a"])).is_err());
        assert!(renderer.check(&sms("ok", &[])).is_ok());
        let no_subject = MessageTemplate::new("e", TemplateKind::Email, "body");
        assert!(renderer.check(&no_subject).is_err());
        assert!(
            renderer
                .check(&sms("x", &[]).with_locale("not a locale"))
                .is_err()
        );
    }

    #[test]
    fn recompiles_when_the_template_changes() {
        let renderer = TemplateRenderer::new();
        let mut template = sms("one {{x}}", &["x"]);
        assert_eq!(
            renderer
                .render(&template, &json!({"x": 1}))
                .unwrap()
                .text
                .unwrap(),
            "one 1"
        );
        assert_eq!(renderer.cached(), 1);
        template.content = "two {{x}}".into();
        assert_eq!(
            renderer
                .render(&template, &json!({"x": 1}))
                .unwrap()
                .text
                .unwrap(),
            "two 1"
        );
        assert_eq!(renderer.cached(), 1);
        renderer.invalidate("code_sms", None);
        assert_eq!(renderer.cached(), 0);
        template.is_active = false;
        assert!(matches!(
            renderer.render(&template, &json!({"x": 1})),
            Err(NotificationError::TemplateInactive { .. })
        ));
    }
}
