//! What can go wrong: [`ServeError`] while setting the server up, [`ApiError`]
//! for one request (answered as `application/problem+json`, RFC 9457).

use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use messaging_core::MessagingError;
use notification_store::StoreError;
use serde::Serialize;
use thiserror::Error;

/// The media type of every error body.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// Setting the HTTP server up failed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ServeError {
    /// A key or token is missing or too weak.
    #[error(
        "{what} must be at least {min} bytes (got {got}); generate one with `openssl rand -hex 32`"
    )]
    WeakSecret {
        /// Which secret (`the user token key`, `the admin token`).
        what: &'static str,
        /// The least length accepted.
        min: usize,
        /// The length given.
        got: usize,
    },
    /// A CORS origin is not a valid header value.
    #[error("invalid CORS origin {origin:?}")]
    InvalidOrigin {
        /// The origin given.
        origin: String,
    },
    /// The notification store's listener could not start.
    #[error("cannot listen to inbox changes: {source}")]
    Listen {
        /// The store's error.
        #[source]
        source: StoreError,
    },
    /// Serving failed (the socket).
    #[error("serving HTTP failed: {source}")]
    Io {
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

/// Why one request failed; every variant is answered as a problem document
/// (`type`, `title`, `status`, `detail`) and none carries a secret or an
/// internal error message (those are logged, not sent).
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ApiError {
    /// No, a malformed, an expired or a forged bearer token.
    #[error("{reason}")]
    Unauthorized {
        /// What was wrong with the token (said to the client: it holds no secret).
        reason: &'static str,
    },
    /// A valid token that may not do this (a user token on the operator API).
    #[error("{reason}")]
    Forbidden {
        /// Why.
        reason: &'static str,
    },
    /// No such resource, or one that is not the caller's (never told apart).
    #[error("{what} not found")]
    NotFound {
        /// What was looked for.
        what: String,
    },
    /// The request is malformed: a query, path or body that does not parse, a
    /// value out of range.
    #[error("{detail}")]
    BadRequest {
        /// What was wrong.
        detail: String,
    },
    /// The body is larger than the configured limit.
    #[error("the request body is larger than the limit")]
    PayloadTooLarge,
    /// The request conflicts with the current state (a topic created with
    /// another partition count).
    #[error("{detail}")]
    Conflict {
        /// What conflicts.
        detail: String,
    },
    /// The backend cannot do this (pausing on a backend without pauses).
    #[error("{detail}")]
    Unsupported {
        /// What is not supported.
        detail: String,
    },
    /// Redis or PostgreSQL could not be reached; retrying later may work.
    #[error("a server behind the API is unavailable")]
    Unavailable,
    /// Anything else (logged with its cause; the client is told nothing more).
    #[error("internal error")]
    Internal,
}

/// An RFC 9457 problem document.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Problem {
    /// A URI naming the problem type (`about:blank`: the status says it all).
    #[serde(rename = "type")]
    pub problem_type: String,
    /// The status's reason phrase.
    pub title: String,
    /// The HTTP status code.
    pub status: u16,
    /// What went wrong with this request, for people.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl Problem {
    /// A problem of `status` with `detail`.
    pub fn new(status: StatusCode, detail: Option<String>) -> Self {
        Self {
            problem_type: "about:blank".to_owned(),
            title: status.canonical_reason().unwrap_or("Error").to_owned(),
            status: status.as_u16(),
            detail,
        }
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = (status, Json(self)).into_response();
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        response
    }
}

impl ApiError {
    /// The HTTP status it is answered with.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Unauthorized { .. } => StatusCode::UNAUTHORIZED,
            Self::Forbidden { .. } => StatusCode::FORBIDDEN,
            Self::NotFound { .. } => StatusCode::NOT_FOUND,
            Self::BadRequest { .. } => StatusCode::BAD_REQUEST,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Conflict { .. } => StatusCode::CONFLICT,
            Self::Unsupported { .. } => StatusCode::NOT_IMPLEMENTED,
            Self::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// A not-found error for `what`.
    pub(crate) fn not_found(what: impl Into<String>) -> Self {
        Self::NotFound { what: what.into() }
    }

    /// A bad-request error saying `detail`.
    pub(crate) fn bad_request(detail: impl Into<String>) -> Self {
        Self::BadRequest {
            detail: detail.into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let detail = match &self {
            Self::Unavailable | Self::Internal => None,
            other => Some(other.to_string()),
        };
        let mut response = Problem::new(status, detail).into_response();
        if status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::NotFound { entity, .. } => Self::not_found(entity),
            StoreError::InvalidInput { reason } => Self::BadRequest { detail: reason },
            StoreError::Conflict { what } => Self::Conflict { detail: what },
            error if error.is_transient() => {
                tracing::warn!(%error, "notification store unavailable");
                Self::Unavailable
            }
            error => {
                tracing::error!(%error, "notification store failed");
                Self::Internal
            }
        }
    }
}

impl From<MessagingError> for ApiError {
    fn from(error: MessagingError) -> Self {
        use messaging_core::BackendError;
        match error {
            MessagingError::Validation(error) => Self::bad_request(error.to_string()),
            MessagingError::InvalidOption(reason) => Self::bad_request(reason),
            MessagingError::DeadLetterNotFound { .. } => Self::not_found("dead letter"),
            MessagingError::Unsupported { operation, .. } => Self::Unsupported {
                detail: format!("the backend does not support {operation}"),
            },
            MessagingError::Backend(error @ BackendError::InvalidPartitions { .. }) => {
                Self::bad_request(error.to_string())
            }
            MessagingError::Backend(
                error @ (BackendError::PartitionsConflict { .. }
                | BackendError::LayoutConflict { .. }),
            ) => Self::Conflict {
                detail: error.to_string(),
            },
            MessagingError::Backend(error) if error.is_transient() => {
                tracing::warn!(%error, "messaging backend unavailable");
                Self::Unavailable
            }
            error => {
                tracing::error!(%error, "messaging backend failed");
                Self::Internal
            }
        }
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        Self::bad_request(rejection.body_text())
    }
}

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> Self {
        Self::bad_request(rejection.body_text())
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            Self::PayloadTooLarge
        } else {
            Self::bad_request(rejection.body_text())
        }
    }
}

/// Middleware: an error answered without a body of ours (the router's 404 and
/// 405, tower-http's 413) becomes a problem document of the same status.
pub(crate) async fn problem_for_bare_errors(response: Response) -> Response {
    let status = response.status();
    let ours = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|value| value.as_bytes() == PROBLEM_JSON.as_bytes());
    if !(status.is_client_error() || status.is_server_error()) || ours {
        return response;
    }
    let allow = response.headers().get(header::ALLOW).cloned();
    let mut problem = Problem::new(status, None).into_response();
    if let Some(allow) = allow {
        problem.headers_mut().insert(header::ALLOW, allow);
    }
    problem
}
