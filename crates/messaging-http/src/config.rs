//! [`HttpConfig`]: the keys, CORS origins and limits of the API.

use std::fmt;
use std::time::Duration;

use axum::http::HeaderValue;

use crate::ServeError;

/// The least length of the user token key and of the admin token, in bytes.
pub const MIN_SECRET_LEN: usize = 32;

/// The request body limit when none is set: 64 KiB.
pub const DEFAULT_BODY_LIMIT: usize = 64 * 1024;

/// How the API authenticates and what it accepts.
///
/// Both secrets are required: there is no anonymous mode.
///
/// * `user_key`: the HS256 key user tokens are signed with (JWTs whose `sub` is
///   the user id, `exp` required);
/// * `admin_token`: the operator API's bearer token, compared in constant time.
///
/// CORS is closed unless origins are allowed with
/// [`with_allowed_origins`](Self::with_allowed_origins).
///
/// ```
/// use messaging_http::HttpConfig;
/// let config = HttpConfig::new("k".repeat(32), "t".repeat(32))?
///     .with_allowed_origins(["https://app.example.com"])?
///     .with_body_limit(16 * 1024);
/// assert!(!format!("{config:?}").contains("kkkk"), "secrets are not shown");
/// assert!(HttpConfig::new("short", "t".repeat(32)).is_err());
/// # Ok::<(), messaging_http::ServeError>(())
/// ```
#[derive(Clone)]
#[non_exhaustive]
pub struct HttpConfig {
    pub(crate) user_key: Vec<u8>,
    pub(crate) admin_token: String,
    /// Origins allowed by CORS; empty (the default): no CORS headers at all.
    pub allowed_origins: Vec<HeaderValue>,
    /// Largest request body accepted (413 above it).
    pub body_limit: usize,
    /// Clock skew tolerated on a token's `exp` and `nbf`.
    pub token_leeway: Duration,
    /// How often an idle event stream gets a keep-alive comment.
    pub keep_alive: Duration,
}

impl HttpConfig {
    /// A config with the two secrets, each at least [`MIN_SECRET_LEN`] bytes,
    /// and the defaults: CORS closed, [`DEFAULT_BODY_LIMIT`], 30 s of token
    /// leeway, a keep-alive every 15 s.
    pub fn new(
        user_key: impl Into<Vec<u8>>,
        admin_token: impl Into<String>,
    ) -> Result<Self, ServeError> {
        let user_key = user_key.into();
        let admin_token = admin_token.into();
        check_secret("the user token key", user_key.len())?;
        check_secret("the admin token", admin_token.len())?;
        Ok(Self {
            user_key,
            admin_token,
            allowed_origins: Vec::new(),
            body_limit: DEFAULT_BODY_LIMIT,
            token_leeway: Duration::from_secs(30),
            keep_alive: Duration::from_secs(15),
        })
    }

    /// Allows cross-origin requests from these origins (`https://host[:port]`).
    pub fn with_allowed_origins<I, S>(mut self, origins: I) -> Result<Self, ServeError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        self.allowed_origins = origins
            .into_iter()
            .map(|origin| {
                let origin = origin.as_ref();
                HeaderValue::from_str(origin).map_err(|_| ServeError::InvalidOrigin {
                    origin: origin.to_owned(),
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(self)
    }

    /// Sets the largest request body accepted.
    pub fn with_body_limit(mut self, bytes: usize) -> Self {
        self.body_limit = bytes;
        self
    }

    /// Sets the clock skew tolerated on token times.
    pub fn with_token_leeway(mut self, leeway: Duration) -> Self {
        self.token_leeway = leeway;
        self
    }

    /// Sets how often an idle event stream gets a keep-alive comment.
    pub fn with_keep_alive(mut self, interval: Duration) -> Self {
        self.keep_alive = interval;
        self
    }
}

fn check_secret(what: &'static str, got: usize) -> Result<(), ServeError> {
    if got < MIN_SECRET_LEN {
        return Err(ServeError::WeakSecret {
            what,
            min: MIN_SECRET_LEN,
            got,
        });
    }
    Ok(())
}

/// Hides both secrets.
impl fmt::Debug for HttpConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpConfig")
            .field("user_key", &"***")
            .field("admin_token", &"***")
            .field("allowed_origins", &self.allowed_origins)
            .field("body_limit", &self.body_limit)
            .field("token_leeway", &self.token_leeway)
            .field("keep_alive", &self.keep_alive)
            .finish()
    }
}
