use std::borrow::Borrow;
use std::fmt;
use std::ops::Deref;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::validation::{ValidationError, validate_topic};

/// A topic name, checked when it is made: 1 to
/// [`MAX_TOPIC_LEN`](crate::MAX_TOPIC_LEN) bytes of `[A-Za-z0-9._-]`, starting
/// with a letter or digit (see [`validate_topic`]). A `Topic` cannot hold an
/// invalid name, so what takes one never checks it again.
///
/// It reads as a `&str` (`Deref`, `AsRef<str>`, `Borrow<str>`), compares with
/// strings and serialises as a plain string; deserialising checks the name.
///
/// ```
/// use messaging_model::{Topic, ValidationError};
/// let topic = Topic::try_from("orders.placed").unwrap();
/// assert_eq!(topic, "orders.placed");
/// assert_eq!(topic.to_string(), "orders.placed");
/// assert_eq!(serde_json::to_value(&topic).unwrap(), "orders.placed");
/// assert!(matches!("has space".parse::<Topic>(), Err(ValidationError::InvalidTopic { .. })));
/// assert!(serde_json::from_str::<Topic>(r#""a:b""#).is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Topic(String);

impl Topic {
    /// Checks `name` and makes a topic of it.
    pub fn new(name: impl Into<String>) -> Result<Self, ValidationError> {
        let name = name.into();
        validate_topic(&name)?;
        Ok(Self(name))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The name, as an owned string.
    pub fn into_string(self) -> String {
        self.0
    }

    /// The topic of partition `index` of this topic: `orders` → `orders#3`.
    /// `None` when this topic is a partition already or `index` is not below
    /// [`MAX_PARTITIONS`](crate::MAX_PARTITIONS).
    ///
    /// ```
    /// use messaging_model::Topic;
    /// let orders = Topic::new("orders").unwrap();
    /// let third = orders.partition(3).unwrap();
    /// assert_eq!(third, "orders#3");
    /// assert_eq!(third.partition_of(), Some(("orders", 3)));
    /// assert_eq!(third.base(), "orders");
    /// assert!(third.partition(1).is_none());
    /// ```
    pub fn partition(&self, index: u16) -> Option<Topic> {
        (self.partition_of().is_none() && index < crate::MAX_PARTITIONS)
            .then(|| Self(format!("{}#{index}", self.0)))
    }

    /// The base topic and the index when this topic names a partition.
    pub fn partition_of(&self) -> Option<(&str, u16)> {
        let (base, index) = self.0.split_once('#')?;
        Some((base, crate::validation::parse_partition_index(index)?))
    }

    /// The topic this one is a partition of, or this topic.
    pub fn base(&self) -> Topic {
        match self.partition_of() {
            Some((base, _)) => Self(base.to_owned()),
            None => self.clone(),
        }
    }
}

impl TryFrom<&str> for Topic {
    type Error = ValidationError;
    fn try_from(name: &str) -> Result<Self, Self::Error> {
        Self::new(name)
    }
}

impl TryFrom<&String> for Topic {
    type Error = ValidationError;
    fn try_from(name: &String) -> Result<Self, Self::Error> {
        Self::new(name.as_str())
    }
}

impl TryFrom<String> for Topic {
    type Error = ValidationError;
    fn try_from(name: String) -> Result<Self, Self::Error> {
        Self::new(name)
    }
}

impl FromStr for Topic {
    type Err = ValidationError;
    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Self::new(name)
    }
}

impl From<Topic> for String {
    fn from(topic: Topic) -> Self {
        topic.0
    }
}

impl AsRef<str> for Topic {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl Borrow<str> for Topic {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl Deref for Topic {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Topic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl PartialEq<str> for Topic {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<&str> for Topic {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

impl PartialEq<String> for Topic {
    fn eq(&self, other: &String) -> bool {
        &self.0 == other
    }
}

impl PartialEq<Topic> for str {
    fn eq(&self, other: &Topic) -> bool {
        self == other.0
    }
}

impl PartialEq<Topic> for &str {
    fn eq(&self, other: &Topic) -> bool {
        *self == other.0
    }
}

impl PartialEq<Topic> for String {
    fn eq(&self, other: &Topic) -> bool {
        *self == other.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_constructor_checks_the_name() {
        assert!(Topic::try_from("a b").is_err());
        assert!(Topic::try_from(String::from("a{b}")).is_err());
        assert!("".parse::<Topic>().is_err());
        assert!(Topic::new("x".repeat(129)).is_err());
        assert_eq!(Topic::new("x".repeat(128)).unwrap().len(), 128);
    }

    #[test]
    fn serde_is_a_checked_string() {
        let topic = Topic::try_from("wallet.recharged").unwrap();
        let text = serde_json::to_string(&topic).unwrap();
        assert_eq!(text, r#""wallet.recharged""#);
        assert_eq!(serde_json::from_str::<Topic>(&text).unwrap(), topic);
        let error = serde_json::from_str::<Topic>(r#""bad topic""#).unwrap_err();
        assert!(error.to_string().contains("invalid topic"), "{error}");
    }

    #[test]
    fn compares_and_reads_as_a_string() {
        let topic = Topic::try_from("a.b").unwrap();
        let owned = String::from("a.b");
        assert_eq!(topic, "a.b");
        assert_eq!("a.b", topic);
        assert_eq!(owned, topic);
        assert!(topic.starts_with("a."));
        let set: std::collections::BTreeSet<Topic> = [topic.clone()].into();
        assert!(set.contains("a.b"));
        assert_eq!(topic.into_string(), "a.b");
    }
}
