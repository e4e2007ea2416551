//! `[preferences]` of the worker's TOML: user preferences, critical
//! categories, the categories of rules and templates, one-click unsubscribe.
//!
//! ```toml
//! [preferences]
//! critical = ["security"]                 # bypass opt-outs and quiet hours
//! [preferences.topic_categories]          # an event rule's category
//! "user.registered" = "account"
//! [preferences.template_categories]       # a template's, when its metadata names none
//! password_reset = "security"
//! [preferences.unsubscribe]               # List-Unsubscribe on marketing email
//! url = "https://example.com/unsubscribe" # takes the RFC 8058 POST; ?token=… is added
//! mailto = "unsubscribe@example.com"      # optional
//! key = "…32 bytes or more…"              # prefer MESSAGING_UNSUBSCRIBE_KEY
//! ttl = "60d"
//! categories = ["marketing"]
//! ```
//!
//! Without `[preferences]` the worker sends everything, as before.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use notification::preferences::PreferencePolicy;
use notification::unsubscribe::{UnsubscribeConfig, UnsubscribeKey};
use serde::Deserialize;

use crate::exit::CliError;

/// `[preferences]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct PreferencesConfig {
    /// Categories that bypass opt-outs and quiet hours.
    pub(crate) critical: BTreeSet<String>,
    /// Topic → the category of its rule's notifications.
    pub(crate) topic_categories: BTreeMap<String, String>,
    /// Template → its category, when its metadata names none.
    pub(crate) template_categories: BTreeMap<String, String>,
    /// One-click unsubscribe links.
    pub(crate) unsubscribe: Option<UnsubscribeSection>,
}

/// `[preferences.unsubscribe]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct UnsubscribeSection {
    /// The HTTPS endpoint.
    pub(crate) url: String,
    /// An unsubscribe address, if any.
    #[serde(default)]
    pub(crate) mailto: Option<String>,
    /// The HMAC key (or `MESSAGING_UNSUBSCRIBE_KEY`).
    #[serde(default)]
    pub(crate) key: Option<String>,
    /// How long a link works [default: 60d].
    #[serde(default, deserialize_with = "duration")]
    pub(crate) ttl: Option<Duration>,
    /// The categories whose emails carry links [default: marketing].
    #[serde(default)]
    pub(crate) categories: Option<BTreeSet<String>>,
}

fn duration<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Duration>, D::Error> {
    let text = String::deserialize(deserializer)?;
    humantime::parse_duration(&text)
        .map(Some)
        .map_err(serde::de::Error::custom)
}

impl PreferencesConfig {
    /// Reads `MESSAGING_UNSUBSCRIBE_KEY` through `lookup`.
    pub(crate) fn apply_env(&mut self, lookup: impl Fn(&str) -> Option<String>) {
        if let (Some(section), Some(key)) = (
            self.unsubscribe.as_mut(),
            lookup("MESSAGING_UNSUBSCRIBE_KEY"),
        ) {
            section.key = Some(key);
        }
    }

    /// The service's policy.
    pub(crate) fn policy(&self) -> PreferencePolicy {
        let mut policy = PreferencePolicy::new();
        for category in &self.critical {
            policy = policy.with_critical(category);
        }
        for (template, category) in &self.template_categories {
            policy = policy.with_template_category(template, category);
        }
        policy
    }

    /// The unsubscribe settings, checked.
    pub(crate) fn unsubscribe(&self) -> Result<Option<UnsubscribeConfig>, CliError> {
        let Some(section) = &self.unsubscribe else {
            return Ok(None);
        };
        let invalid = |name: &str, reason: String| CliError::InvalidSetting {
            name: format!("preferences.unsubscribe.{name}"),
            reason,
        };
        let key = section
            .key
            .clone()
            .ok_or_else(|| invalid("key", "required (or MESSAGING_UNSUBSCRIBE_KEY)".to_owned()))?;
        let key = UnsubscribeKey::new(key.into_bytes())
            .map_err(|error| invalid("key", error.to_string()))?;
        let mut config = UnsubscribeConfig::new(key, section.url.clone());
        if let Some(mailto) = &section.mailto {
            config = config.with_mailto(mailto);
        }
        if let Some(ttl) = section.ttl {
            let ttl = chrono::Duration::from_std(ttl)
                .map_err(|error| invalid("ttl", error.to_string()))?;
            config = config.with_ttl(ttl);
        }
        if let Some(categories) = &section.categories {
            config = config.with_categories(categories.iter().cloned());
        }
        // A link that would be refused is refused now, not on the first email.
        config
            .links("check")
            .map_err(|error| invalid("url", error.to_string()))?;
        Ok(Some(config))
    }
}

/// `[[digests]]`: events of `topic` collected per user into one email from
/// `template` every `max_age` or `max_count` events, whichever first.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DigestConfig {
    /// The topic whose events are collected (not one of the event rules' topics).
    pub(crate) topic: String,
    /// The digest key [default: the topic].
    #[serde(default)]
    pub(crate) key: Option<String>,
    /// The email template, rendered with `events` and `count`.
    pub(crate) template: String,
    /// The digest's category.
    #[serde(default)]
    pub(crate) category: Option<String>,
    /// Events that flush a window.
    pub(crate) max_count: u32,
    /// Time after a window's first event that flushes it.
    #[serde(deserialize_with = "required_duration")]
    pub(crate) max_age: Duration,
}

fn required_duration<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Duration, D::Error> {
    let text = String::deserialize(deserializer)?;
    humantime::parse_duration(&text).map_err(serde::de::Error::custom)
}

impl DigestConfig {
    /// The rule.
    pub(crate) fn rule(&self) -> notification::digest::DigestRule {
        let rule = notification::digest::DigestRule::new(
            &self.topic,
            self.key.as_deref().unwrap_or(&self.topic),
            &self.template,
            self.max_count,
            self.max_age,
        );
        match &self.category {
            Some(category) => rule.with_category(category),
            None => rule,
        }
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn the_section_parses_and_needs_a_long_key() {
        let config: crate::config::Config = toml::from_str(
            r#"
            [preferences]
            critical = ["security"]
            [preferences.topic_categories]
            "notification.email" = "billing"
            [preferences.unsubscribe]
            url = "https://example.com/u"
            key = "short"
            "#,
        )
        .unwrap();
        let mut prefs = config.preferences.clone().unwrap();
        assert!(prefs.policy().is_critical(Some("security")));
        assert!(prefs.unsubscribe().is_err());
        prefs.apply_env(|_| Some("k".repeat(32)));
        assert!(prefs.unsubscribe().unwrap().is_some());
    }
}
