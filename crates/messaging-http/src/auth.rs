//! Who is asking: [`UserTokens`] (HS256 JWTs for one user) and the operator's
//! [`AdminToken`], and the extractors that check them ([`CurrentUser`],
//! [`Operator`]).

use std::time::Duration;

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::{ApiError, AppState, ServeError};

/// The longest user id a token may carry.
pub const MAX_USER_ID_LEN: usize = 256;

/// The claims of a user token: `sub` is the user id, `exp` (seconds since the
/// epoch) is required; `iat` is optional.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserClaims {
    /// The user id: the only source of "who" for the inbox API.
    pub sub: String,
    /// Expiry, seconds since the epoch.
    pub exp: u64,
    /// Issued at, seconds since the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<u64>,
}

/// Signs and checks user tokens: HS256 JWTs with one key.
///
/// ```
/// use std::time::Duration;
/// use messaging_http::UserTokens;
/// let tokens = UserTokens::new(&[7; 32], Duration::from_secs(30))?;
/// let token = tokens.mint("user-1", Duration::from_secs(3600)).unwrap();
/// assert_eq!(tokens.verify(&token).unwrap().sub, "user-1");
/// assert!(UserTokens::new(&[8; 32], Duration::ZERO)?.verify(&token).is_err(), "another key");
/// assert!(UserTokens::new(b"short", Duration::ZERO).is_err());
/// # Ok::<(), messaging_http::ServeError>(())
/// ```
#[derive(Clone)]
pub struct UserTokens {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
}

impl std::fmt::Debug for UserTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserTokens").finish_non_exhaustive()
    }
}

impl UserTokens {
    /// Tokens signed with `key` (at least
    /// [`MIN_SECRET_LEN`](crate::MIN_SECRET_LEN) bytes), accepted up to
    /// `leeway` past their `exp`.
    pub fn new(key: &[u8], leeway: Duration) -> Result<Self, ServeError> {
        let weak = || ServeError::WeakSecret {
            what: "the user token key",
            min: crate::MIN_SECRET_LEN,
            got: key.len(),
        };
        if key.len() < crate::MIN_SECRET_LEN {
            return Err(weak());
        }
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_required_spec_claims(&["exp", "sub"]);
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.validate_aud = false;
        validation.leeway = leeway.as_secs();
        Ok(Self {
            encoding: EncodingKey::from_secret(key).map_err(|_| weak())?,
            decoding: DecodingKey::from_secret(key).map_err(|_| weak())?,
            validation,
        })
    }

    /// A token for `user_id`, valid for `ttl` from now.
    pub fn mint(
        &self,
        user_id: &str,
        ttl: Duration,
    ) -> Result<String, jsonwebtoken::errors::Error> {
        let now = jsonwebtoken::get_current_timestamp();
        let claims = UserClaims {
            sub: user_id.to_owned(),
            exp: now.saturating_add(ttl.as_secs()),
            iat: Some(now),
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
    }

    /// The claims of a valid token: signed with the key, HS256, not expired,
    /// with a non-empty `sub` of at most [`MAX_USER_ID_LEN`] bytes.
    pub fn verify(&self, token: &str) -> Result<UserClaims, ApiError> {
        use jsonwebtoken::errors::ErrorKind;
        let claims = jsonwebtoken::decode::<UserClaims>(token, &self.decoding, &self.validation)
            .map_err(|error| ApiError::Unauthorized {
                reason: match error.kind() {
                    ErrorKind::ExpiredSignature => "the token has expired",
                    ErrorKind::ImmatureSignature => "the token is not valid yet",
                    ErrorKind::InvalidSignature => "the token's signature does not match",
                    ErrorKind::InvalidAlgorithm => "the token must be signed with HS256",
                    ErrorKind::MissingRequiredClaim(_) => "the token needs `sub` and `exp` claims",
                    _ => "malformed token",
                },
            })?
            .claims;
        if claims.sub.trim().is_empty() || claims.sub.len() > MAX_USER_ID_LEN {
            return Err(ApiError::Unauthorized {
                reason: "the token's `sub` must be a user id of 1 to 256 bytes",
            });
        }
        Ok(claims)
    }
}

/// The operator API's bearer token, kept as its SHA-256 digest and compared in
/// constant time (the digests have one length whatever is presented).
#[derive(Clone)]
pub struct AdminToken {
    digest: [u8; 32],
}

impl std::fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AdminToken(***)")
    }
}

impl AdminToken {
    /// The token operators present.
    pub fn new(token: &str) -> Self {
        Self {
            digest: Sha256::digest(token.as_bytes()).into(),
        }
    }

    /// Whether `presented` is the token.
    pub fn matches(&self, presented: &str) -> bool {
        let presented: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        self.digest.ct_eq(&presented).into()
    }
}

/// The bearer token of a request.
fn bearer(parts: &Parts) -> Result<&str, ApiError> {
    let value = parts
        .headers
        .get(header::AUTHORIZATION)
        .ok_or(ApiError::Unauthorized {
            reason: "missing bearer token",
        })?;
    let value = value.to_str().map_err(|_| ApiError::Unauthorized {
        reason: "malformed Authorization header",
    })?;
    let (scheme, token) = value.split_once(' ').ok_or(ApiError::Unauthorized {
        reason: "expected `Authorization: Bearer <token>`",
    })?;
    if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
        return Err(ApiError::Unauthorized {
            reason: "expected `Authorization: Bearer <token>`",
        });
    }
    Ok(token.trim())
}

/// The user a request is made for: the `sub` of its valid user token, and
/// nothing else (never a path, query or body value).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CurrentUser(pub String);

impl FromRequestParts<AppState> for CurrentUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let claims = state.user_tokens().verify(bearer(parts)?)?;
        Ok(Self(claims.sub))
    }
}

/// A request made with the admin token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Operator;

impl FromRequestParts<AppState> for Operator {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = bearer(parts)?;
        if state.admin_token().matches(token) {
            return Ok(Self);
        }
        if state.user_tokens().verify(token).is_ok() {
            return Err(ApiError::Forbidden {
                reason: "the operator API needs the admin token, not a user token",
            });
        }
        Err(ApiError::Unauthorized {
            reason: "invalid admin token",
        })
    }
}
