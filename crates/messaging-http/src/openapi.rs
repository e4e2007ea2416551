//! The OpenAPI description, generated from the handlers' annotations and
//! served at `GET /openapi.json`.

use axum::Json;
use utoipa::Modify;
use utoipa::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};

/// The API's OpenAPI 3.1 description.
///
/// ```
/// use utoipa::OpenApi;
/// let doc = messaging_http::ApiDoc::openapi();
/// assert!(doc.paths.paths.contains_key("/v1/me/notifications"));
/// ```
#[derive(Debug, OpenApi)]
#[openapi(
    info(
        title = "messaging suite HTTP API",
        description = "A user's inbox (with Server-Sent Events) and the operator API. Errors are application/problem+json (RFC 9457)."
    ),
    paths(
        crate::inbox::list,
        crate::inbox::show,
        crate::inbox::unread_count,
        crate::inbox::mark_read,
        crate::inbox::mark_unread,
        crate::inbox::mark_all_read,
        crate::inbox::delete,
        crate::events::events,
        crate::admin::list_topics,
        crate::admin::create_topic,
        crate::admin::delete_topic,
        crate::admin::all_stats,
        crate::admin::topic_stats,
        crate::admin::dead_letters,
        crate::admin::show_dead_letter,
        crate::admin::replay_dead_letter,
        crate::admin::replay_dead_letters,
        crate::admin::purge_dead_letters,
        crate::admin::pause_state,
        crate::admin::pause,
        crate::admin::resume,
        crate::admin::health,
        crate::schedules::list,
        crate::schedules::pause,
        crate::schedules::resume,
        crate::schedules::remove,
        crate::webhooks::unsubscribe,
        crate::webhooks::delivery_events,
    ),
    components(schemas(crate::Problem)),
    modifiers(&BearerSchemes),
    tags(
        (name = "inbox", description = "The caller's own notifications (user token: an HS256 JWT whose `sub` is the user id)"),
        (name = "admin", description = "The operator API (the admin token)"),
        (name = "webhooks", description = "One-click unsubscribe and providers' delivery callbacks, each authenticated by its own signature"),
    )
)]
pub struct ApiDoc;

/// Declares the two bearer schemes the paths refer to.
struct BearerSchemes;

impl Modify for BearerSchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "user_token",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some("HS256 JWT: `sub` the user id, `exp` required"))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "admin_token",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("The configured admin token (an opaque string)"))
                    .build(),
            ),
        );
    }
}

/// `GET /openapi.json`.
pub(crate) async fn serve_openapi() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
