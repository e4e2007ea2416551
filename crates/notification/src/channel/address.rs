use std::net::IpAddr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::NotificationError;

/// A parsed email address, with an optional display name.
///
/// The name is kept on one line (control characters become spaces) so it can
/// never start a header of its own.
///
/// ```
/// use notification::channel::EmailAddress;
/// let address = EmailAddress::parse(" ann@example.com ").unwrap().with_name("Ann\r\nBcc: x@y.z");
/// assert_eq!(address.address(), "ann@example.com");
/// assert_eq!(address.name(), Some("Ann  Bcc: x@y.z"));
/// assert!(EmailAddress::parse("not an address").is_err());
/// assert!(EmailAddress::parse("a@b.c\r\nBcc: x@y.z").is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EmailAddress {
    address: String,
    name: Option<String>,
}

impl EmailAddress {
    /// Parses an address (`user@domain`), surrounding spaces ignored.
    pub fn parse(text: &str) -> Result<Self, NotificationError> {
        let trimmed = text.trim();
        let invalid = |reason: String| NotificationError::InvalidEmailAddress {
            value: text.chars().take(320).collect(),
            reason,
        };
        if trimmed.chars().any(char::is_control) {
            return Err(invalid("it contains control characters".to_owned()));
        }
        check_address(trimmed).map_err(|reason| invalid(reason.to_owned()))?;
        Ok(Self {
            address: trimmed.to_owned(),
            name: None,
        })
    }

    /// Sets the display name (kept on one line).
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        let name = crate::template::single_line(&name.into());
        let name = name.trim();
        self.name = (!name.is_empty()).then(|| name.to_owned());
        self
    }

    /// The address.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// The display name.
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }
}

impl std::fmt::Display for EmailAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.address)
    }
}

/// The check lettre's `Address::from_str` makes, with the same crates
/// (`email_address` for the local part and the domain, `idna` for international
/// domains, then IP literals) and its error texts, so that parsing an address
/// needs no SMTP client (the `smtp` feature is optional) and an address
/// accepted here is one lettre accepts when it sends.
fn check_address(address: &str) -> Result<(), &'static str> {
    let (user, domain) = address.rsplit_once('@').ok_or("Missing domain or user")?;
    if !email_address::EmailAddress::is_valid_local_part(user) {
        return Err("Invalid email user");
    }
    let valid_domain = is_valid_ascii_domain(domain)
        || idna::domain_to_ascii(domain).is_ok_and(|ascii| is_valid_ascii_domain(&ascii));
    if !valid_domain {
        return Err("Invalid email domain");
    }
    Ok(())
}

/// A domain name, or an IP address (bracketed or not).
fn is_valid_ascii_domain(domain: &str) -> bool {
    if email_address::EmailAddress::is_valid_domain(domain) {
        return true;
    }
    let ip = domain
        .strip_prefix('[')
        .and_then(|ip| ip.strip_suffix(']'))
        .unwrap_or(domain);
    ip.parse::<IpAddr>().is_ok()
}

/// A phone number in E.164 form: `+`, then 8 to 15 digits, the first not 0.
///
/// ```
/// use notification::channel::PhoneNumber;
/// assert_eq!(PhoneNumber::parse("+14155550100").unwrap().as_str(), "+14155550100");
/// for bad in ["14155550100", "+0123456789", "+1 415 555 0100", "+123", "+1234567890123456"] {
///     assert!(PhoneNumber::parse(bad).is_err(), "{bad}");
/// }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PhoneNumber(String);

impl PhoneNumber {
    /// Parses an E.164 number.
    pub fn parse(text: &str) -> Result<Self, NotificationError> {
        let invalid = |reason| NotificationError::InvalidPhoneNumber {
            value: text.chars().take(32).collect(),
            reason,
        };
        let Some(digits) = text.strip_prefix('+') else {
            return Err(invalid("it must start with +"));
        };
        if !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(invalid("only digits may follow the +"));
        }
        if !(8..=15).contains(&digits.len()) {
            return Err(invalid("it must have 8 to 15 digits"));
        }
        if digits.starts_with('0') {
            return Err(invalid("the country code cannot start with 0"));
        }
        Ok(Self(text.to_owned()))
    }

    /// The number, `+` included.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for PhoneNumber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for PhoneNumber {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for PhoneNumber {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Self::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// A push device registration token: 1 to 4096 bytes, no spaces or control
/// characters.
///
/// ```
/// use notification::channel::DeviceToken;
/// assert_eq!(DeviceToken::parse("device-1").unwrap().as_str(), "device-1");
/// for bad in ["", "two words", "line\nbreak"] {
///     assert!(DeviceToken::parse(bad).is_err(), "{bad:?}");
/// }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DeviceToken(String);

impl DeviceToken {
    /// Longest token accepted, in bytes.
    pub const MAX_LEN: usize = 4096;

    /// Parses a token.
    pub fn parse(text: &str) -> Result<Self, NotificationError> {
        if text.is_empty()
            || text.len() > Self::MAX_LEN
            || text.chars().any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(NotificationError::InvalidDeviceToken {
                reason: "it must be 1 to 4096 characters without spaces",
            });
        }
        Ok(Self(text.to_owned()))
    }

    /// The token.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for DeviceToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(all(test, feature = "smtp"))]
mod tests {
    use std::str::FromStr;

    use super::*;

    /// The check without lettre accepts and refuses what lettre does, with its texts.
    #[test]
    fn accepts_and_refuses_what_lettre_does() {
        let cases = [
            "ann@example.com",
            "ann.lee+tag@mail.example.co.uk",
            "\"quoted user\"@example.com",
            "user@[127.0.0.1]",
            "user@127.0.0.1",
            "user@[2606:4700:4700::1111]",
            "user@bücher.example",
            "jörg@example.com",
            "a@b",
            "a@b.c",
            "a@@b.c",
            "@example.com",
            "ann@",
            "ann",
            "",
            "not an address",
            "two@at@example.com",
            "ann@exa mple.com",
            "ann@-example.com",
            "ann@example..com",
            ".ann@example.com",
            "ann.@example.com",
            "a..b@example.com",
            "ann@[300.1.1.1]",
            "ann@example.com.",
            "<ann@example.com>",
        ];
        for case in cases {
            let ours = check_address(case);
            let lettre = lettre::Address::from_str(case).map_err(|error| error.to_string());
            assert_eq!(
                ours.is_ok(),
                lettre.is_ok(),
                "{case:?}: {ours:?} vs {lettre:?}"
            );
            if let (Err(ours), Err(lettre)) = (ours, lettre) {
                assert_eq!(ours, lettre, "{case:?}");
            }
        }
    }
}
