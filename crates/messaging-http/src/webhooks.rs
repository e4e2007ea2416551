//! Endpoints called by others than users and operators, each authenticated by
//! what the caller holds: the one-click unsubscribe link of a marketing email
//! (its signed token) and providers' delivery callbacks (their signature or
//! credentials). Neither takes a bearer token; both are off until configured.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use notification::unsubscribe::{UnsubscribeError, UnsubscribeKey, unsubscribe_one_click};
use notification_delivery_events::apply::DeliveryEventApplier;
use notification_delivery_events::mailgun::MailgunVerifier;
use notification_delivery_events::postmark::PostmarkVerifier;
use notification_delivery_events::sendgrid::SendGridVerifier;
use notification_delivery_events::ses::{
    SesVerifier, SnsCallback, SnsMessage, validate_certificate_url,
};
use notification_delivery_events::twilio::TwilioVerifier;
use notification_delivery_events::{DeliveryEvent, DeliveryEventError};
use notification_store::PreferenceStore;
use serde::{Deserialize, Serialize};

use crate::{ApiError, AppState};

/// Where the SES webhook gets the signing certificates of SNS messages.
///
/// The URL it is asked for is a message's `SigningCertURL`, already checked
/// to be `https://sns.<region>.amazonaws.com/….pem`; an implementation
/// should cache what it fetched (`messaging serve` fetches over HTTPS and
/// keeps each certificate for the life of the process).
pub trait SnsCertificates: Send + Sync {
    /// The certificate (PEM or DER) at `url`, or why it could not be had.
    fn certificate<'a>(
        &'a self,
        url: &'a str,
    ) -> futures::future::BoxFuture<'a, Result<Vec<u8>, String>>;
}

/// A provider's delivery callback verifier, answering at
/// `POST /v1/webhooks/{name}`.
#[derive(Clone)]
#[non_exhaustive]
pub enum DeliveryWebhook {
    /// Mailgun webhooks (`/v1/webhooks/mailgun`), by their signing key.
    Mailgun(MailgunVerifier),
    /// SendGrid's Event Webhook (`/v1/webhooks/sendgrid`), by its public key.
    SendGrid(SendGridVerifier),
    /// Postmark webhooks (`/v1/webhooks/postmark`), by basic-auth credentials.
    Postmark(PostmarkVerifier),
    /// Twilio status callbacks (`/v1/webhooks/twilio`), by `X-Twilio-Signature`
    /// over the URL Twilio calls: `public_url` is that URL without its query
    /// (behind a proxy, the public one, e.g.
    /// `https://api.example.com/v1/webhooks/twilio`); the request's query is
    /// appended.
    Twilio {
        /// Checks the signature with the account's auth token.
        verifier: TwilioVerifier,
        /// The URL configured at Twilio, without a query.
        public_url: String,
    },
    /// Amazon SES notifications through SNS (`/v1/webhooks/ses`), by the SNS
    /// signature over the message, checked with the certificate the message
    /// names (from `https://sns.<region>.amazonaws.com/` only). A subscription
    /// confirmation is answered 200 and its `SubscribeURL` logged: open it (or
    /// confirm with its token) to start the deliveries.
    Ses {
        /// Checks the signature, the topics accepted and the age.
        verifier: SesVerifier,
        /// Fetches (and caches) the signing certificates.
        certificates: Arc<dyn SnsCertificates>,
    },
}

impl std::fmt::Debug for DeliveryWebhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("DeliveryWebhook")
            .field(&self.name())
            .finish()
    }
}

impl DeliveryWebhook {
    /// The last path segment it answers at.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Mailgun(_) => "mailgun",
            Self::SendGrid(_) => "sendgrid",
            Self::Postmark(_) => "postmark",
            Self::Twilio { .. } => "twilio",
            Self::Ses { .. } => "ses",
        }
    }

    fn parse(
        &self,
        query: Option<&str>,
        body: &[u8],
        headers: &[(String, String)],
    ) -> Result<Vec<DeliveryEvent>, DeliveryEventError> {
        match self {
            Self::Mailgun(verifier) => verifier.parse(body, headers),
            Self::SendGrid(verifier) => verifier.parse(body, headers),
            Self::Postmark(verifier) => verifier.parse(body, headers),
            Self::Twilio {
                verifier,
                public_url,
            } => {
                let url = match query {
                    Some(query) => format!("{public_url}?{query}"),
                    None => public_url.clone(),
                };
                verifier.parse(&url, body, headers)
            }
            Self::Ses { .. } => Err(DeliveryEventError::Malformed(
                "SES callbacks are verified asynchronously (ses_events)".into(),
            )),
        }
    }
}

/// A callback refused: 401 when its signature, credentials, certificate or
/// topic is not the provider's, 400 when it is no callback at all.
fn callback_error(error: DeliveryEventError) -> ApiError {
    match error {
        DeliveryEventError::BadSignature
        | DeliveryEventError::BadCredentials
        | DeliveryEventError::MissingHeader(_)
        | DeliveryEventError::StaleTimestamp { .. }
        | DeliveryEventError::UntrustedCertificateUrl(_)
        | DeliveryEventError::Certificate(_)
        | DeliveryEventError::UnexpectedTopic(_) => ApiError::Unauthorized {
            reason: "the callback's signature or credentials do not match",
        },
        other => ApiError::bad_request(other.to_string()),
    }
}

/// What an SES webhook's message held: the events to apply, or nothing (a
/// subscription's confirmation, logged).
async fn ses_events(
    verifier: &SesVerifier,
    certificates: &dyn SnsCertificates,
    body: &[u8],
) -> Result<Vec<DeliveryEvent>, ApiError> {
    let message = SnsMessage::parse(body).map_err(callback_error)?;
    validate_certificate_url(message.signing_cert_url()).map_err(callback_error)?;
    let certificate = certificates
        .certificate(message.signing_cert_url())
        .await
        .map_err(|reason| {
            tracing::warn!(%reason, url = message.signing_cert_url(), "cannot fetch an SNS signing certificate");
            ApiError::Unavailable
        })?;
    match verifier
        .verify_message(&message, &certificate)
        .map_err(callback_error)?
    {
        SnsCallback::Notification(events) => Ok(events),
        SnsCallback::SubscriptionConfirmation {
            topic_arn,
            subscribe_url,
            ..
        } => {
            tracing::warn!(%topic_arn, %subscribe_url, "SNS subscription to confirm: open its SubscribeURL");
            Ok(Vec::new())
        }
        SnsCallback::UnsubscribeConfirmation { topic_arn, .. } => {
            tracing::warn!(%topic_arn, "SNS subscription removed");
            Ok(Vec::new())
        }
        _ => Ok(Vec::new()),
    }
}

/// What the webhook endpoints act with; [`Webhooks::default`] has none of them
/// (their routes answer 404).
#[derive(Clone, Default)]
pub struct Webhooks {
    unsubscribe: Option<(UnsubscribeKey, Arc<dyn PreferenceStore>)>,
    delivery: Vec<DeliveryWebhook>,
    applier: Option<DeliveryEventApplier>,
}

impl std::fmt::Debug for Webhooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Webhooks")
            .field("unsubscribe", &self.unsubscribe.is_some())
            .field(
                "delivery",
                &self
                    .delivery
                    .iter()
                    .map(DeliveryWebhook::name)
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl Webhooks {
    /// Takes one-click unsubscribes (RFC 8058) at `POST
    /// /v1/webhooks/unsubscribe?token=…`, tokens signed with `key` (the
    /// worker's `[preferences.unsubscribe]` key), changing `preferences`.
    pub fn with_unsubscribe(
        mut self,
        key: UnsubscribeKey,
        preferences: Arc<dyn PreferenceStore>,
    ) -> Self {
        self.unsubscribe = Some((key, preferences));
        self
    }

    /// Takes `webhook`'s callbacks and applies their events with `applier`
    /// (one applier for every provider).
    pub fn with_delivery(
        mut self,
        webhook: DeliveryWebhook,
        applier: DeliveryEventApplier,
    ) -> Self {
        self.delivery.retain(|known| known.name() != webhook.name());
        self.delivery.push(webhook);
        self.applier = Some(applier);
        self
    }
}

/// The token of a one-click unsubscribe URL.
#[derive(Debug, Clone, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UnsubscribeParams {
    /// The signed token of the `List-Unsubscribe` URL.
    pub token: String,
}

/// What a one-click unsubscribe turned off (the user is not named).
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct UnsubscribedBody {
    /// The category turned off.
    pub category: String,
    /// On this channel.
    pub channel: String,
}

/// How many events a delivery callback carried and were applied.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DeliveryApplied {
    /// The count.
    pub applied: usize,
}

/// One-click unsubscribe (RFC 8058): the `POST` a mail client sends to the
/// `List-Unsubscribe` URL. Repeating it is harmless. `GET` is not taken, so a
/// link scanner fetching the URL changes nothing.
#[utoipa::path(post, path = "/v1/webhooks/unsubscribe", tag = "webhooks",
    params(UnsubscribeParams),
    responses(
        (status = 200, body = UnsubscribedBody),
        (status = 400, description = "A malformed token", body = crate::Problem, content_type = "application/problem+json"),
        (status = 403, description = "A forged or expired token", body = crate::Problem, content_type = "application/problem+json"),
        (status = 404, description = "Unsubscribe is not configured, or the token's subscriber is unknown", body = crate::Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn unsubscribe(
    State(state): State<AppState>,
    params: Result<Query<UnsubscribeParams>, QueryRejection>,
) -> Result<Json<UnsubscribedBody>, ApiError> {
    let Some((key, preferences)) = &state.webhooks().unsubscribe else {
        return Err(ApiError::not_found("route"));
    };
    let Query(params) = params?;
    let done = unsubscribe_one_click(key, &params.token, preferences.as_ref())
        .await
        .map_err(|error| match error {
            UnsubscribeError::Malformed => ApiError::bad_request("malformed unsubscribe token"),
            UnsubscribeError::Forged => ApiError::Forbidden {
                reason: "the unsubscribe token's signature does not match",
            },
            UnsubscribeError::Expired { .. } => ApiError::Forbidden {
                reason: "the unsubscribe token has expired",
            },
            UnsubscribeError::UnknownSubscriber | UnsubscribeError::OtherUser => {
                ApiError::not_found("subscriber")
            }
            UnsubscribeError::Store(error) => error.into(),
            other => {
                tracing::error!(error = %other, "unsubscribe failed");
                ApiError::Internal
            }
        })?;
    Ok(Json(UnsubscribedBody {
        category: done.category,
        channel: done.channel.as_str().to_owned(),
    }))
}

/// A provider's delivery callback (`mailgun`, `sendgrid`, `postmark`, `twilio`):
/// verified on the raw body and headers, then applied to the notification it
/// names and the suppression list. A 5xx asks the provider to retry.
#[utoipa::path(post, path = "/v1/webhooks/{provider}", tag = "webhooks",
    params(("provider" = String, Path, description = "mailgun, sendgrid, postmark, twilio or ses")),
    request_body(content = String, description = "The provider's callback, as it sends it"),
    responses(
        (status = 200, body = DeliveryApplied),
        (status = 400, description = "A malformed callback", body = crate::Problem, content_type = "application/problem+json"),
        (status = 401, description = "A bad signature or credentials, or a stale timestamp", body = crate::Problem, content_type = "application/problem+json"),
        (status = 404, description = "This provider is not configured", body = crate::Problem, content_type = "application/problem+json"),
        (status = 503, description = "A store is unavailable, or an SNS signing certificate could not be fetched: retry", body = crate::Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn delivery_events(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<DeliveryApplied>, ApiError> {
    let Path(provider) = path?;
    let webhooks = state.webhooks();
    let (Some(webhook), Some(applier)) = (
        webhooks.delivery.iter().find(|w| w.name() == provider),
        &webhooks.applier,
    ) else {
        return Err(ApiError::not_found("route"));
    };
    let headers: Vec<(String, String)> = headers
        .iter()
        .filter_map(|(name, value)| {
            Some((name.as_str().to_owned(), value.to_str().ok()?.to_owned()))
        })
        .collect();
    let events = match webhook {
        DeliveryWebhook::Ses {
            verifier,
            certificates,
        } => ses_events(verifier, certificates.as_ref(), &body).await?,
        other => other
            .parse(uri.query(), &body, &headers)
            .map_err(callback_error)?,
    };
    let applied = applier.apply_all(&events).await.map_err(|error| {
        if error.is_transient() {
            tracing::warn!(%error, provider = webhook.name(), "delivery events not applied");
            ApiError::Unavailable
        } else {
            tracing::error!(%error, provider = webhook.name(), "delivery events not applied");
            ApiError::Internal
        }
    })?;
    tracing::info!(
        provider = webhook.name(),
        events = applied.len(),
        "delivery events applied"
    );
    Ok(Json(DeliveryApplied {
        applied: applied.len(),
    }))
}
