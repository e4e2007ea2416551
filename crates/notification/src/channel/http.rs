//! The HTTP client shared by the SMS and push providers: rustls with the ring
//! crypto provider (no aws-lc), timeouts, and retries with backoff that honour
//! `Retry-After`.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use reqwest::header::RETRY_AFTER;
use reqwest::{Client, RequestBuilder, Response, Url};
use tracing::{debug, warn};

use super::ProviderRetryPolicy;
use crate::NotificationError;
use crate::error::is_transient_status;

/// Timeouts and retries of an HTTP provider.
///
/// ```
/// use std::time::Duration;
/// use notification::channel::{HttpClientConfig, ProviderRetryPolicy};
/// let config = HttpClientConfig::default()
///     .with_timeout(Duration::from_secs(5))
///     .with_retry(ProviderRetryPolicy::none());
/// assert_eq!(config.retry.max_attempts, 1);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct HttpClientConfig {
    /// How long one request may take, connection included.
    pub timeout: Duration,
    /// How long connecting may take.
    pub connect_timeout: Duration,
    /// Retries within one send.
    pub retry: ProviderRetryPolicy,
    /// The `User-Agent` header.
    pub user_agent: String,
}

impl Default for HttpClientConfig {
    /// 10 s per request, 5 s to connect, the default retry policy.
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(5),
            retry: ProviderRetryPolicy::default(),
            user_agent: concat!("messaging-suite-notification/", env!("CARGO_PKG_VERSION"))
                .to_owned(),
        }
    }
}

impl HttpClientConfig {
    /// Sets the request timeout.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sets the connect timeout.
    pub fn with_connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Sets the retry policy.
    pub fn with_retry(mut self, retry: ProviderRetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// Sets the `User-Agent`.
    pub fn with_user_agent(mut self, user_agent: impl Into<String>) -> Self {
        self.user_agent = user_agent.into();
        self
    }
}

/// rustls with the ring provider and the platform's certificate verifier,
/// handed to reqwest as is: no process-wide default provider is needed and
/// aws-lc is never built.
fn tls_config(provider: &'static str) -> Result<rustls::ClientConfig, NotificationError> {
    let invalid = |reason: String| NotificationError::Config {
        channel: provider,
        reason,
    };
    let crypto = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = rustls_platform_verifier::Verifier::new(crypto.clone())
        .map_err(|error| invalid(format!("certificate verifier: {error}")))?;
    let mut config = rustls::ClientConfig::builder_with_provider(crypto)
        .with_safe_default_protocol_versions()
        .map_err(|error| invalid(format!("TLS versions: {error}")))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// What a provider answered with a success status.
pub(crate) struct HttpAnswer {
    pub(crate) body: String,
}

/// One provider's HTTP client and retry policy.
#[derive(Clone)]
pub(crate) struct HttpSender {
    client: Client,
    retry: ProviderRetryPolicy,
    provider: &'static str,
}

impl std::fmt::Debug for HttpSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpSender")
            .field("provider", &self.provider)
            .field("retry", &self.retry)
            .finish_non_exhaustive()
    }
}

/// Most of an error body kept in an error.
const MAX_ERROR_BODY: usize = 512;
/// Most of a success body read (enough for any provider's message id).
const MAX_ANSWER_BODY: usize = 64 * 1024;

/// The first `limit` bytes of a response body, read chunk by chunk: a provider
/// (or whatever answers in its place) cannot make this process hold more.
/// The rest is never read; the connection is dropped with it.
async fn read_prefix(mut response: Response, limit: usize) -> String {
    let mut bytes = Vec::new();
    while bytes.len() < limit {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                let room = limit - bytes.len();
                bytes.extend_from_slice(&chunk[..chunk.len().min(room)]);
            }
            Ok(None) | Err(_) => break,
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

impl HttpSender {
    pub(crate) fn new(
        provider: &'static str,
        config: &HttpClientConfig,
    ) -> Result<Self, NotificationError> {
        let client = Client::builder()
            .tls_backend_preconfigured(tls_config(provider)?)
            .timeout(config.timeout)
            .connect_timeout(config.connect_timeout)
            .user_agent(config.user_agent.clone())
            // A redirect would carry the message text and numbers to another
            // host and count its answer as a delivery: a 3xx is a failure.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|error| NotificationError::Config {
                channel: provider,
                reason: error.to_string(),
            })?;
        Ok(Self {
            client,
            retry: config.retry.clone(),
            provider,
        })
    }

    /// Sends the request `build` makes (once per attempt), retrying as the
    /// policy says; the body of the first success.
    pub(crate) async fn send(
        &self,
        build: impl Fn(&Client) -> RequestBuilder,
    ) -> Result<HttpAnswer, NotificationError> {
        let mut attempt = 1;
        loop {
            let last = attempt >= self.retry.max_attempts;
            let failure = match build(&self.client).send().await {
                Ok(response) if response.status().is_success() => {
                    let body = read_prefix(response, MAX_ANSWER_BODY).await;
                    return Ok(HttpAnswer { body });
                }
                Ok(response) => self.status_error(response).await,
                Err(error) => {
                    if error.is_builder() {
                        return Err(NotificationError::Config {
                            channel: self.provider,
                            reason: error.to_string(),
                        });
                    }
                    NotificationError::HttpTransport {
                        provider: self.provider,
                        timeout: error.is_timeout(),
                        source: Box::new(error),
                    }
                }
            };
            if failure.is_permanent() || last {
                return Err(failure);
            }
            let wait = match failure.retry_after() {
                Some(asked) if asked > self.retry.max_retry_after => {
                    // Too long to hold this send: let the caller's retry path wait.
                    return Err(failure);
                }
                Some(asked) => asked,
                None => self.retry.backoff(attempt),
            };
            warn!(provider = self.provider, attempt, ?wait, error = %failure, "provider call failed; retrying");
            tokio::time::sleep(wait).await;
            attempt += 1;
        }
    }

    async fn status_error(&self, response: Response) -> NotificationError {
        let status = response.status();
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|value| value.to_str().ok())
            .and_then(parse_retry_after);
        let mut body = read_prefix(response, MAX_ERROR_BODY + 4).await;
        if body.len() > MAX_ERROR_BODY {
            let mut end = MAX_ERROR_BODY;
            while !body.is_char_boundary(end) {
                end -= 1;
            }
            body.truncate(end);
            body.push('…');
        }
        debug!(provider = self.provider, %status, "provider answered with an error");
        NotificationError::HttpStatus {
            provider: self.provider,
            status: status.as_u16(),
            body,
            retry_after: retry_after.filter(|_| is_transient_status(status.as_u16())),
        }
    }
}

/// `Retry-After`: delta-seconds or an HTTP date.
pub(crate) fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(
        at.duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

pub(crate) fn parse_url(provider: &'static str, url: &str) -> Result<Url, NotificationError> {
    let parsed = Url::parse(url).map_err(|error| NotificationError::Config {
        channel: provider,
        reason: format!("invalid URL {url:?}: {error}"),
    })?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(NotificationError::Config {
            channel: provider,
            reason: format!("URL {url:?} is not http or https"),
        });
    }
    Ok(parsed)
}

/// The id a JSON answer gives, under `id`, `sid`, `name` or `message_id`.
pub(crate) fn answer_id(body: &str) -> Option<String> {
    let value: serde_json::Value = serde_json::from_str(body).ok()?;
    ["id", "sid", "name", "message_id"]
        .iter()
        .find_map(|key| value.get(key).and_then(|id| id.as_str()).map(str::to_owned))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_retry_after_in_both_forms() {
        assert_eq!(parse_retry_after("3"), Some(Duration::from_secs(3)));
        assert_eq!(
            parse_retry_after("Thu, 01 Jan 1970 00:00:00 GMT"),
            Some(Duration::ZERO)
        );
        let later = SystemTime::now() + Duration::from_secs(120);
        let parsed = parse_retry_after(&httpdate::fmt_http_date(later)).unwrap();
        assert!(parsed > Duration::from_secs(100) && parsed <= Duration::from_secs(120));
        assert_eq!(parse_retry_after("soon"), None);
    }

    #[test]
    fn builds_a_client_without_a_global_crypto_provider() {
        HttpSender::new("webhook", &HttpClientConfig::default()).unwrap();
    }
}
