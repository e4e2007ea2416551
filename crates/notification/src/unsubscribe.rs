//! One-click unsubscribe (RFC 8058): signed, expiring tokens in the
//! `List-Unsubscribe` URL of marketing emails, and the handler a POST to that
//! URL calls.
//!
//! **The token** is `base64url(payload ‖ tag)` without padding, where
//! `payload = version (1) ‖ subscriber id (16) ‖ expiry, Unix seconds (8, big
//! endian) ‖ channel (1) ‖ category (UTF-8)` and `tag = HMAC-SHA256(key,
//! "notification-unsubscribe" ‖ payload)` (32 bytes). The user id is never in
//! it: the subscriber id is an opaque random UUID the preference store keeps
//! with the user's preferences ([`PreferenceStore::subscriber_id`]), so a token
//! read in a mail log says nothing about who it is for, and a stolen one can
//! only unsubscribe its own user from its own category. (Encrypting the user id
//! instead would need a cipher the workspace does not carry; the opaque id also
//! lets a user's links be revoked by giving them a new one.)
//!
//! ```
//! use std::sync::Arc;
//! use chrono::{Duration, Utc};
//! use messaging_model::NotificationKind;
//! use notification::store::{InMemoryPreferenceStore, PreferenceStore};
//! use notification::unsubscribe::{UnsubscribeKey, UnsubscribeToken, unsubscribe_one_click_at};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let key = UnsubscribeKey::new(b"a secret of at least 32 bytes, from config".to_vec())?;
//! let store = InMemoryPreferenceStore::new();
//! let subscriber = store.subscriber_id("user-1").await?;
//! let now = Utc::now();
//! let token = UnsubscribeToken::new(subscriber, "marketing", NotificationKind::Email, now + Duration::days(30))
//!     .sign(&key);
//! assert!(!token.contains("user-1"));
//! let done = unsubscribe_one_click_at(&key, &token, &store, now).await?;
//! assert_eq!(done.user_id, "user-1");
//! let prefs = store.get_preferences("user-1").await?;
//! assert!(prefs.opted_out(Some("marketing"), NotificationKind::Email).is_some());
//! # Ok(()) }
//! ```

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use hmac::{Hmac, KeyInit, Mac};
use messaging_model::NotificationKind;
use sha2::Sha256;
use thiserror::Error;
use uuid::Uuid;

use crate::store::{OptOut, PreferenceChange, PreferenceStore, StoreError};

const VERSION: u8 = 1;
const DOMAIN: &[u8] = b"notification-unsubscribe";
const TAG_LEN: usize = 32;
const FIXED_LEN: usize = 1 + 16 + 8 + 1;
/// Longest token accepted, in characters (a category of 200 bytes fits).
const MAX_TOKEN_LEN: usize = 512;

/// The HMAC key of unsubscribe tokens: at least 32 bytes.
#[derive(Clone)]
pub struct UnsubscribeKey(Vec<u8>);

impl std::fmt::Debug for UnsubscribeKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("UnsubscribeKey(…)")
    }
}

impl UnsubscribeKey {
    /// A key of these bytes; refused when shorter than 32 bytes.
    pub fn new(bytes: Vec<u8>) -> Result<Self, UnsubscribeError> {
        if bytes.len() < 32 {
            return Err(UnsubscribeError::WeakKey { len: bytes.len() });
        }
        Ok(Self(bytes))
    }

    fn mac(&self, payload: &[u8]) -> Hmac<Sha256> {
        // HMAC takes a key of any length: this never fails.
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.0)
            .unwrap_or_else(|_| unreachable!("HMAC accepts every key length"));
        mac.update(DOMAIN);
        mac.update(payload);
        mac
    }
}

/// What a token says: whose link (as a subscriber id), which category on
/// which channel, until when.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct UnsubscribeToken {
    /// The user's opaque subscriber id.
    pub subscriber_id: Uuid,
    /// The category to turn off.
    pub category: String,
    /// The channel to turn it off on.
    pub channel: NotificationKind,
    /// After this, the token is refused.
    pub expires_at: DateTime<Utc>,
}

/// Why a token or an unsubscribe was refused.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum UnsubscribeError {
    /// Not a token at all: not base64url, too short or too long, unknown version.
    #[error("malformed unsubscribe token")]
    Malformed,
    /// Its signature does not match: forged, tampered with, or signed with another key.
    #[error("forged unsubscribe token")]
    Forged,
    /// Signed, but expired.
    #[error("unsubscribe token expired at {expired_at}")]
    Expired {
        /// When it expired.
        expired_at: DateTime<Utc>,
    },
    /// Signed, but for another user than the one asking.
    #[error("unsubscribe token of another user")]
    OtherUser,
    /// Signed, but its subscriber id is not (or no longer) known.
    #[error("unsubscribe token of an unknown subscriber")]
    UnknownSubscriber,
    /// The key is too short.
    #[error("unsubscribe key of {len} bytes: at least 32 are needed")]
    WeakKey {
        /// Its length.
        len: usize,
    },
    /// The preference store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl UnsubscribeToken {
    /// A token for `subscriber_id` to turn `category` off on `channel`, valid until `expires_at`.
    pub fn new(
        subscriber_id: Uuid,
        category: impl Into<String>,
        channel: NotificationKind,
        expires_at: DateTime<Utc>,
    ) -> Self {
        Self {
            subscriber_id,
            category: category.into(),
            channel,
            expires_at,
        }
    }

    /// The signed token text (URL-safe).
    pub fn sign(&self, key: &UnsubscribeKey) -> String {
        let mut bytes = Vec::with_capacity(FIXED_LEN + self.category.len() + TAG_LEN);
        bytes.push(VERSION);
        bytes.extend_from_slice(self.subscriber_id.as_bytes());
        bytes.extend_from_slice(&self.expires_at.timestamp().to_be_bytes());
        bytes.push(channel_code(self.channel));
        bytes.extend_from_slice(self.category.as_bytes());
        let tag = key.mac(&bytes).finalize().into_bytes();
        bytes.extend_from_slice(&tag);
        URL_SAFE_NO_PAD.encode(bytes)
    }

    /// Checks `token`'s signature with `key` and its expiry against `now`.
    /// The signature is checked (in constant time) before anything it says is
    /// believed.
    pub fn verify(
        key: &UnsubscribeKey,
        token: &str,
        now: DateTime<Utc>,
    ) -> Result<Self, UnsubscribeError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(UnsubscribeError::Malformed);
        }
        let bytes = URL_SAFE_NO_PAD
            .decode(token.trim())
            .map_err(|_| UnsubscribeError::Malformed)?;
        if bytes.len() < FIXED_LEN + TAG_LEN {
            return Err(UnsubscribeError::Malformed);
        }
        let (payload, tag) = bytes.split_at(bytes.len() - TAG_LEN);
        key.mac(payload)
            .verify_slice(tag)
            .map_err(|_| UnsubscribeError::Forged)?;
        if payload[0] != VERSION {
            return Err(UnsubscribeError::Malformed);
        }
        let subscriber_id =
            Uuid::from_slice(&payload[1..17]).map_err(|_| UnsubscribeError::Malformed)?;
        let mut seconds = [0u8; 8];
        seconds.copy_from_slice(&payload[17..25]);
        let expires_at = DateTime::from_timestamp(i64::from_be_bytes(seconds), 0)
            .ok_or(UnsubscribeError::Malformed)?;
        let channel = channel_from_code(payload[25]).ok_or(UnsubscribeError::Malformed)?;
        let category = std::str::from_utf8(&payload[FIXED_LEN..])
            .map_err(|_| UnsubscribeError::Malformed)?
            .to_owned();
        if category.is_empty() {
            return Err(UnsubscribeError::Malformed);
        }
        if now >= expires_at {
            return Err(UnsubscribeError::Expired {
                expired_at: expires_at,
            });
        }
        Ok(Self {
            subscriber_id,
            category,
            channel,
            expires_at,
        })
    }
}

fn channel_code(channel: NotificationKind) -> u8 {
    match channel {
        NotificationKind::Email => 1,
        NotificationKind::Sms => 2,
        NotificationKind::Push => 3,
        NotificationKind::System => 4,
    }
}

fn channel_from_code(code: u8) -> Option<NotificationKind> {
    Some(match code {
        1 => NotificationKind::Email,
        2 => NotificationKind::Sms,
        3 => NotificationKind::Push,
        4 => NotificationKind::System,
        _ => return None,
    })
}

/// What an unsubscribe did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Unsubscribed {
    /// The user whose preference changed.
    pub user_id: String,
    /// The category turned off.
    pub category: String,
    /// On this channel.
    pub channel: NotificationKind,
}

/// The one-click handler: verifies `token` (now) and turns its category off on
/// its channel for its user. What an HTTP endpoint calls for a `POST` with
/// `List-Unsubscribe=One-Click`. Repeating it is harmless.
pub async fn unsubscribe_one_click(
    key: &UnsubscribeKey,
    token: &str,
    store: &dyn PreferenceStore,
) -> Result<Unsubscribed, UnsubscribeError> {
    unsubscribe_one_click_at(key, token, store, Utc::now()).await
}

/// [`unsubscribe_one_click`] with the time given (tests, replays).
pub async fn unsubscribe_one_click_at(
    key: &UnsubscribeKey,
    token: &str,
    store: &dyn PreferenceStore,
    now: DateTime<Utc>,
) -> Result<Unsubscribed, UnsubscribeError> {
    let claims = UnsubscribeToken::verify(key, token, now)?;
    let user_id = store
        .user_of_subscriber(claims.subscriber_id)
        .await?
        .ok_or(UnsubscribeError::UnknownSubscriber)?;
    apply(store, user_id, claims).await
}

/// Like [`unsubscribe_one_click_at`] for a signed-in user (a preference page
/// that was given the token): refused with [`UnsubscribeError::OtherUser`]
/// when the token is not `user_id`'s.
pub async fn unsubscribe_as_user(
    key: &UnsubscribeKey,
    token: &str,
    user_id: &str,
    store: &dyn PreferenceStore,
    now: DateTime<Utc>,
) -> Result<Unsubscribed, UnsubscribeError> {
    let claims = UnsubscribeToken::verify(key, token, now)?;
    let owner = store.user_of_subscriber(claims.subscriber_id).await?;
    if owner.as_deref() != Some(user_id) {
        return Err(UnsubscribeError::OtherUser);
    }
    apply(store, user_id.to_owned(), claims).await
}

async fn apply(
    store: &dyn PreferenceStore,
    user_id: String,
    claims: UnsubscribeToken,
) -> Result<Unsubscribed, UnsubscribeError> {
    let opt_out = OptOut::category(claims.category.clone()).on(claims.channel);
    store
        .update_preferences(&user_id, &[PreferenceChange::opt_out(opt_out)])
        .await?;
    tracing::info!(category = %claims.category, channel = claims.channel.as_str(), "one-click unsubscribe");
    Ok(Unsubscribed {
        user_id,
        category: claims.category,
        channel: claims.channel,
    })
}

/// How the service puts unsubscribe links into emails of the categories in
/// `categories` (by default `marketing`).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct UnsubscribeConfig {
    /// The signing key.
    pub key: UnsubscribeKey,
    /// The HTTPS endpoint that takes the POST; the token is appended as `?token=…`
    /// (or `&token=…` when the URL has a query already).
    pub url: String,
    /// An address that unsubscribes by mail, if any (`mailto:` is added; the
    /// token goes in the subject).
    pub mailto: Option<String>,
    /// How long a token is valid.
    pub ttl: chrono::Duration,
    /// The categories whose emails carry the links.
    pub categories: std::collections::BTreeSet<String>,
}

impl UnsubscribeConfig {
    /// Links to `url` signed with `key`, valid for 60 days, on `marketing` emails.
    pub fn new(key: UnsubscribeKey, url: impl Into<String>) -> Self {
        Self {
            key,
            url: url.into(),
            mailto: None,
            ttl: chrono::Duration::days(60),
            categories: ["marketing".to_owned()].into(),
        }
    }

    /// Offers unsubscribing by mail to `address` too.
    pub fn with_mailto(mut self, address: impl Into<String>) -> Self {
        self.mailto = Some(address.into());
        self
    }

    /// Sets how long tokens are valid.
    pub fn with_ttl(mut self, ttl: chrono::Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// Sets the categories whose emails carry the links.
    pub fn with_categories<I: IntoIterator<Item = S>, S: Into<String>>(
        mut self,
        categories: I,
    ) -> Self {
        self.categories = categories.into_iter().map(Into::into).collect();
        self
    }

    /// The links of `token`.
    pub fn links(
        &self,
        token: &str,
    ) -> Result<crate::channel::ListUnsubscribe, crate::NotificationError> {
        let separator = if self.url.contains('?') { '&' } else { '?' };
        let https = format!("{}{separator}token={token}", self.url);
        let mailto = self
            .mailto
            .as_ref()
            .map(|address| format!("mailto:{address}?subject=unsubscribe%20{token}"));
        crate::channel::ListUnsubscribe::new(https, mailto)
    }
}

/// The token of a `List-Unsubscribe` URL (its `token` query parameter).
pub fn token_of_url(url: &str) -> Option<&str> {
    let query = url.split_once('?')?.1;
    query
        .split('&')
        .find_map(|pair| pair.strip_prefix("token="))
}

#[cfg(test)]
mod tests {
    use chrono::Duration;

    use super::*;
    use crate::store::InMemoryPreferenceStore;

    fn key() -> UnsubscribeKey {
        UnsubscribeKey::new(vec![7; 32]).unwrap()
    }

    fn now() -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000, 0).unwrap()
    }

    #[test]
    fn a_signed_token_verifies_and_says_what_it_was_given() {
        let claims = UnsubscribeToken::new(
            Uuid::new_v4(),
            "marketing",
            NotificationKind::Email,
            now() + Duration::days(1),
        );
        let token = claims.sign(&key());
        assert_eq!(
            UnsubscribeToken::verify(&key(), &token, now()).unwrap(),
            claims
        );
    }

    #[test]
    fn a_short_key_is_refused() {
        assert!(matches!(
            UnsubscribeKey::new(vec![1; 31]),
            Err(UnsubscribeError::WeakKey { len: 31 })
        ));
    }

    #[test]
    fn forged_tampered_expired_and_malformed_tokens_are_refused() {
        let claims = UnsubscribeToken::new(
            Uuid::new_v4(),
            "marketing",
            NotificationKind::Email,
            now() + Duration::days(1),
        );
        let token = claims.sign(&key());
        // Another key.
        let other = UnsubscribeKey::new(vec![8; 32]).unwrap();
        assert!(matches!(
            UnsubscribeToken::verify(&other, &token, now()),
            Err(UnsubscribeError::Forged)
        ));
        // Every single flipped byte (the subscriber, the expiry, the category,
        // the tag) is caught.
        let bytes = URL_SAFE_NO_PAD.decode(&token).unwrap();
        for index in 0..bytes.len() {
            let mut tampered = bytes.clone();
            tampered[index] ^= 0x01;
            let text = URL_SAFE_NO_PAD.encode(&tampered);
            assert!(
                matches!(
                    UnsubscribeToken::verify(&key(), &text, now()),
                    Err(UnsubscribeError::Forged)
                ),
                "byte {index}"
            );
        }
        // A category swapped for another, tag kept.
        let mut swapped = bytes.clone();
        let at = FIXED_LEN;
        swapped.splice(at..at + "marketing".len(), b"security".iter().copied());
        assert!(matches!(
            UnsubscribeToken::verify(&key(), &URL_SAFE_NO_PAD.encode(swapped), now()),
            Err(UnsubscribeError::Forged)
        ));
        // Expired: at and after its expiry.
        for later in [Duration::days(1), Duration::days(2)] {
            assert!(matches!(
                UnsubscribeToken::verify(&key(), &token, now() + later),
                Err(UnsubscribeError::Expired { .. })
            ));
        }
        for garbage in ["", "!!!", "AAAA", &"A".repeat(600)] {
            assert!(matches!(
                UnsubscribeToken::verify(&key(), garbage, now()),
                Err(UnsubscribeError::Malformed)
            ));
        }
    }

    #[tokio::test]
    async fn one_click_turns_off_only_the_token_users_category_and_other_users_tokens_are_refused()
    {
        let store = InMemoryPreferenceStore::new();
        let alice = store.subscriber_id("alice").await.unwrap();
        let bob = store.subscriber_id("bob").await.unwrap();
        let expires = now() + Duration::days(1);
        let bobs =
            UnsubscribeToken::new(bob, "marketing", NotificationKind::Email, expires).sign(&key());
        assert!(!bobs.contains("bob"));

        // Alice, signed in, cannot use Bob's token.
        assert!(matches!(
            unsubscribe_as_user(&key(), &bobs, "alice", &store, now()).await,
            Err(UnsubscribeError::OtherUser)
        ));
        assert!(
            store
                .get_preferences("bob")
                .await
                .unwrap()
                .opt_outs
                .is_empty()
        );

        // One click with Bob's token: Bob's marketing email goes, nothing of Alice's.
        let done = unsubscribe_one_click_at(&key(), &bobs, &store, now())
            .await
            .unwrap();
        assert_eq!(done.user_id, "bob");
        let bob_prefs = store.get_preferences("bob").await.unwrap();
        assert!(
            bob_prefs
                .opted_out(Some("marketing"), NotificationKind::Email)
                .is_some()
        );
        assert!(
            bob_prefs
                .opted_out(Some("billing"), NotificationKind::Email)
                .is_none()
        );
        assert!(
            store
                .get_preferences("alice")
                .await
                .unwrap()
                .opt_outs
                .is_empty()
        );

        // Alice's own token works for her.
        let alices = UnsubscribeToken::new(alice, "marketing", NotificationKind::Email, expires)
            .sign(&key());
        assert_eq!(
            unsubscribe_as_user(&key(), &alices, "alice", &store, now())
                .await
                .unwrap()
                .user_id,
            "alice"
        );

        // A well-signed token of a subscriber the store does not know.
        let stranger = UnsubscribeToken::new(
            Uuid::new_v4(),
            "marketing",
            NotificationKind::Email,
            expires,
        )
        .sign(&key());
        assert!(matches!(
            unsubscribe_one_click_at(&key(), &stranger, &store, now()).await,
            Err(UnsubscribeError::UnknownSubscriber)
        ));
        // Expired changes nothing.
        let store = InMemoryPreferenceStore::new();
        let carol = store.subscriber_id("carol").await.unwrap();
        let old =
            UnsubscribeToken::new(carol, "marketing", NotificationKind::Email, now()).sign(&key());
        assert!(matches!(
            unsubscribe_one_click_at(&key(), &old, &store, now()).await,
            Err(UnsubscribeError::Expired { .. })
        ));
        assert!(
            store
                .get_preferences("carol")
                .await
                .unwrap()
                .opt_outs
                .is_empty()
        );
    }

    #[test]
    fn links_carry_the_token_and_token_of_url_finds_it() {
        let config = UnsubscribeConfig::new(key(), "https://example.com/unsubscribe")
            .with_mailto("unsubscribe@example.com");
        let links = config.links("abc_-1").unwrap();
        assert_eq!(links.https, "https://example.com/unsubscribe?token=abc_-1");
        assert_eq!(token_of_url(&links.https), Some("abc_-1"));
        assert_eq!(
            links.header_value(),
            "<https://example.com/unsubscribe?token=abc_-1>, <mailto:unsubscribe@example.com?subject=unsubscribe%20abc_-1>"
        );
        let plain = UnsubscribeConfig::new(key(), "http://example.com/u");
        assert!(plain.links("abc").is_err());
    }
}
