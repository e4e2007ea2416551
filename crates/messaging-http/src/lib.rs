//! The HTTP API of the messaging suite, on axum: what `messaging serve` runs.
//!
//! * The inbox, for end users, under `/v1/me`: list (keyset pages, filters),
//!   unread count, mark read / unread / all read, delete, and `GET
//!   /v1/me/events`, a Server-Sent Events stream of the user's new
//!   notifications and unread count. Authenticated by a user token, an HS256
//!   JWT ([`UserTokens`]) whose `sub` is the only source of the user id.
//! * The operator API, under `/v1/admin`, behind the admin token (an opaque
//!   bearer token compared in constant time): topics, stats, dead letters
//!   (filtered pages, show, replay one or all at a rate, purge), pause and
//!   resume, schedules (list, pause, resume, remove), health.
//! * Webhooks, off until [`Webhooks`] configures them: one-click unsubscribe
//!   (`POST /v1/webhooks/unsubscribe?token=…`, RFC 8058) and providers'
//!   delivery callbacks (`POST /v1/webhooks/{mailgun,sendgrid,postmark,twilio}`),
//!   each authenticated by its own signature.
//! * `GET /dashboard` ([`dashboard`]): the web dashboard (topics with live
//!   counts, a topic's groups, dead letters with search and replay, a user's
//!   inbox), embedded in the binary.
//! * `GET /openapi.json` ([`ApiDoc`]) and `GET /livez`.
//!
//! Every error is an `application/problem+json` document ([`Problem`]).
//! Another user's notification is 404, as a missing one is, and nothing changes.
//!
//! Events reach every replica through PostgreSQL: the store announces each
//! recorded notification (`LISTEN`/`NOTIFY`, see
//! [`PostgresStore::inbox_listener`](notification_store_postgres::PostgresStore::inbox_listener)),
//! and [`InboxEvents::follow`] fans it out to the user's open streams.
//!
//! ```no_run
//! use std::sync::Arc;
//! use messaging_http::{AppState, HttpConfig, InboxEvents};
//! use notification_store_postgres::{PostgresStore, PostgresStoreConfig};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let store = PostgresStore::connect(PostgresStoreConfig::from_env()?).await?;
//! store.migrate().await?;
//! let events = InboxEvents::new();
//! tokio::spawn(events.clone().follow(store.inbox_listener().await?));
//! let config = HttpConfig::new(std::env::var("USER_KEY")?, std::env::var("ADMIN_TOKEN")?)?;
//! let messaging = Arc::new(messaging_core::MessagingService::in_memory());
//! let state = AppState::new(messaging, Arc::new(store), events, config)?;
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! axum::serve(listener, messaging_http::router(state)).await?;
//! # Ok(()) }
//! ```

mod admin;
mod auth;
mod config;
pub mod dashboard;
mod error;
mod events;
mod inbox;
mod openapi;
mod schedules;
mod state;
mod webhooks;

use axum::Router;
use axum::http::{HeaderName, Method, header};
use axum::routing::{get, post};
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::limit::RequestBodyLimitLayer;

pub use admin::{
    DEAD_LETTER_SCAN_LIMIT, DEFAULT_DEAD_LETTER_PAGE, DeadLetterBody, DeadLetterFilter,
    DeadLetterPage, DeadLetterPageParams, GroupStatsBody, HealthBody, MAX_DEAD_LETTER_PAGE,
    NewTopic, PauseChanged, PauseParams, PauseStateBody, Purged, ReplayParams, Replayed, TopicList,
    TopicStatsBody,
};
pub use auth::{AdminToken, CurrentUser, MAX_USER_ID_LEN, Operator, UserClaims, UserTokens};
pub use config::{DEFAULT_BODY_LIMIT, HttpConfig, MIN_SECRET_LEN};
pub use error::{ApiError, PROBLEM_JSON, Problem, ServeError};
pub use events::InboxEvents;
pub use inbox::{ChangedCount, InboxNotification, InboxPageBody, InboxParams, UnreadCount};
pub use openapi::ApiDoc;
pub use schedules::ScheduleBody;
pub use state::AppState;
pub use webhooks::{
    DeliveryApplied, DeliveryWebhook, SnsCertificates, UnsubscribeParams, UnsubscribedBody,
    Webhooks,
};

/// The API's routes over `state`, with its limits: the request body limit,
/// CORS only for the configured origins (none by default), and every error
/// answered as a problem document.
pub fn router(state: AppState) -> Router {
    let config = state.config().clone();
    let me = Router::new()
        .route("/notifications", get(inbox::list))
        .route("/notifications/read-all", post(inbox::mark_all_read))
        .route(
            "/notifications/{id}",
            get(inbox::show).delete(inbox::delete),
        )
        .route("/notifications/{id}/read", post(inbox::mark_read))
        .route("/notifications/{id}/unread", post(inbox::mark_unread))
        .route("/unread-count", get(inbox::unread_count))
        .route("/events", get(events::events));
    let admin = Router::new()
        .route("/topics", get(admin::list_topics).post(admin::create_topic))
        .route(
            "/topics/{topic}",
            axum::routing::delete(admin::delete_topic),
        )
        .route("/topics/{topic}/stats", get(admin::topic_stats))
        .route(
            "/topics/{topic}/dead-letters",
            get(admin::dead_letters).delete(admin::purge_dead_letters),
        )
        .route(
            "/topics/{topic}/dead-letters/replay",
            post(admin::replay_dead_letters),
        )
        .route(
            "/topics/{topic}/dead-letters/{id}",
            get(admin::show_dead_letter),
        )
        .route(
            "/topics/{topic}/dead-letters/{id}/replay",
            post(admin::replay_dead_letter),
        )
        .route(
            "/topics/{topic}/pause",
            get(admin::pause_state).post(admin::pause),
        )
        .route("/topics/{topic}/resume", post(admin::resume))
        .route("/schedules", get(schedules::list))
        .route(
            "/schedules/{name}",
            axum::routing::delete(schedules::remove),
        )
        .route("/schedules/{name}/pause", post(schedules::pause))
        .route("/schedules/{name}/resume", post(schedules::resume))
        .route("/stats", get(admin::all_stats))
        .route("/health", get(admin::health));
    let mut router = Router::new()
        .nest("/v1/me", me)
        .nest("/v1/admin", admin)
        .route("/v1/webhooks/unsubscribe", post(webhooks::unsubscribe))
        .route("/v1/webhooks/{provider}", post(webhooks::delivery_events))
        .route("/openapi.json", get(openapi::serve_openapi))
        .route("/livez", get(|| async { "ok" }))
        .merge(dashboard::routes())
        .fallback(|| async { ApiError::not_found("route") })
        .with_state(state)
        .layer(RequestBodyLimitLayer::new(config.body_limit))
        .layer(axum::middleware::map_response(
            error::problem_for_bare_errors,
        ));
    if !config.allowed_origins.is_empty() {
        router = router.layer(
            CorsLayer::new()
                .allow_origin(AllowOrigin::list(config.allowed_origins))
                .allow_methods([Method::GET, Method::POST, Method::DELETE])
                .allow_headers([
                    header::AUTHORIZATION,
                    header::CONTENT_TYPE,
                    HeaderName::from_static("last-event-id"),
                ]),
        );
    }
    router
}
