//! The inbox API under `/v1/me`: the caller's own notifications, the user
//! being the `sub` of their token and nothing else.

use axum::Json;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use messaging_model::{Notification, NotificationKind};
use notification_store::{InboxCursor, InboxQuery, MAX_PAGE_SIZE};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::auth::CurrentUser;
use crate::{ApiError, AppState};

/// One notification as the inbox shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct InboxNotification {
    /// Its id.
    pub id: Uuid,
    /// The channel: `email`, `sms`, `push` or `system` (in-app).
    pub kind: String,
    /// Title or subject.
    pub title: String,
    /// Body.
    pub content: String,
    /// Delivery status (`pending`, `sent`, `failed`, …).
    pub status: String,
    /// Whether the user has read it.
    pub is_read: bool,
    /// Extra data recorded with it.
    #[schema(value_type = Object)]
    pub metadata: serde_json::Value,
    /// When it was recorded.
    pub created_at: DateTime<Utc>,
    /// When the user read it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub read_at: Option<DateTime<Utc>>,
}

impl From<Notification> for InboxNotification {
    fn from(notification: Notification) -> Self {
        Self {
            id: notification.id,
            kind: notification.kind.as_str().to_owned(),
            title: notification.title,
            content: notification.content,
            status: notification.status.as_str().to_owned(),
            is_read: notification.is_read,
            metadata: notification.metadata,
            created_at: notification.created_at,
            read_at: notification.read_at,
        }
    }
}

/// One page of the inbox, newest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct InboxPageBody {
    /// The notifications, newest first.
    pub items: Vec<InboxNotification>,
    /// Pass as `cursor` for the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// How many notifications are unread.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct UnreadCount {
    /// The count.
    pub unread: u64,
}

/// How many notifications changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ChangedCount {
    /// The count.
    pub changed: u64,
}

/// The filters and page of `GET /v1/me/notifications`.
#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct InboxParams {
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Page size, 1 to 100 (default 20).
    pub limit: Option<u32>,
    /// Only unread notifications.
    pub unread: Option<bool>,
    /// Only this channel: `email`, `sms`, `push` or `system`.
    pub kind: Option<String>,
    /// Only notifications recorded at or after this time (RFC 3339).
    pub since: Option<DateTime<Utc>>,
}

impl InboxParams {
    fn query(&self) -> Result<InboxQuery, ApiError> {
        let mut query = InboxQuery::default();
        if let Some(limit) = self.limit {
            if limit == 0 || limit > MAX_PAGE_SIZE {
                return Err(ApiError::bad_request(format!(
                    "limit must be 1 to {MAX_PAGE_SIZE}"
                )));
            }
            query = query.with_limit(limit);
        }
        if self.unread == Some(true) {
            query = query.unread_only();
        }
        if let Some(kind) = &self.kind {
            query = query.with_kind(parse_kind(kind)?);
        }
        if let Some(since) = self.since {
            query = query.with_since(since);
        }
        if let Some(cursor) = &self.cursor {
            let cursor = InboxCursor::decode(cursor)
                .map_err(|_| ApiError::bad_request("malformed cursor"))?;
            query = query.with_cursor(cursor);
        }
        Ok(query)
    }
}

fn parse_kind(kind: &str) -> Result<NotificationKind, ApiError> {
    match kind {
        "email" => Ok(NotificationKind::Email),
        "sms" => Ok(NotificationKind::Sms),
        "push" => Ok(NotificationKind::Push),
        "system" => Ok(NotificationKind::System),
        _ => Err(ApiError::bad_request(
            "kind must be email, sms, push or system",
        )),
    }
}

/// The caller's notifications, newest first, a page at a time.
#[utoipa::path(
    get,
    path = "/v1/me/notifications",
    tag = "inbox",
    params(InboxParams),
    security(("user_token" = [])),
    responses(
        (status = 200, body = InboxPageBody),
        (status = 400, description = "A malformed filter or cursor", body = crate::Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid user token", body = crate::Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn list(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    params: Result<Query<InboxParams>, QueryRejection>,
) -> Result<Json<InboxPageBody>, ApiError> {
    let Query(params) = params?;
    let page = state.store().list_for_user(&user, &params.query()?).await?;
    Ok(Json(InboxPageBody {
        items: page
            .items
            .into_iter()
            .map(InboxNotification::from)
            .collect(),
        next_cursor: page.next_cursor.map(|cursor| cursor.encode()),
    }))
}

/// The caller's unread count.
#[utoipa::path(
    get,
    path = "/v1/me/unread-count",
    tag = "inbox",
    security(("user_token" = [])),
    responses(
        (status = 200, body = UnreadCount),
        (status = 401, description = "No valid user token", body = crate::Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn unread_count(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
) -> Result<Json<UnreadCount>, ApiError> {
    let unread = state.store().unread_count(&user).await?;
    Ok(Json(UnreadCount { unread }))
}

/// The notification id of a path: malformed is 404 as a stranger's id is, so
/// the two are never told apart.
fn notification_id(path: Result<Path<String>, PathRejection>) -> Result<Uuid, ApiError> {
    let Path(id) = path?;
    Uuid::parse_str(&id).map_err(|_| ApiError::not_found("notification"))
}

/// One of the caller's notifications (404 for another user's).
#[utoipa::path(
    get,
    path = "/v1/me/notifications/{id}",
    tag = "inbox",
    params(("id" = Uuid, Path, description = "The notification id")),
    security(("user_token" = [])),
    responses(
        (status = 200, body = InboxNotification),
        (status = 404, description = "No such notification of the caller", body = crate::Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn show(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<InboxNotification>, ApiError> {
    let id = notification_id(path)?;
    let notification = state.store().get_notification(&user, id).await?;
    Ok(Json(notification.into()))
}

/// Marks one of the caller's notifications read.
#[utoipa::path(
    post,
    path = "/v1/me/notifications/{id}/read",
    tag = "inbox",
    params(("id" = Uuid, Path, description = "The notification id")),
    security(("user_token" = [])),
    responses(
        (status = 204, description = "Marked read (marking again keeps the first read time)"),
        (status = 404, description = "No such notification of the caller", body = crate::Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn mark_read(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    path: Result<Path<String>, PathRejection>,
) -> Result<StatusCode, ApiError> {
    let id = notification_id(path)?;
    state.store().mark_read(&user, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Marks one of the caller's notifications unread.
#[utoipa::path(
    post,
    path = "/v1/me/notifications/{id}/unread",
    tag = "inbox",
    params(("id" = Uuid, Path, description = "The notification id")),
    security(("user_token" = [])),
    responses(
        (status = 204, description = "Marked unread"),
        (status = 404, description = "No such notification of the caller", body = crate::Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn mark_unread(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    path: Result<Path<String>, PathRejection>,
) -> Result<StatusCode, ApiError> {
    let id = notification_id(path)?;
    state.store().mark_unread(&user, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Marks every unread notification of the caller read.
#[utoipa::path(
    post,
    path = "/v1/me/notifications/read-all",
    tag = "inbox",
    security(("user_token" = [])),
    responses(
        (status = 200, body = ChangedCount),
        (status = 401, description = "No valid user token", body = crate::Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn mark_all_read(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
) -> Result<Json<ChangedCount>, ApiError> {
    let changed = state.store().mark_all_read(&user).await?;
    Ok(Json(ChangedCount { changed }))
}

/// Deletes one of the caller's notifications.
#[utoipa::path(
    delete,
    path = "/v1/me/notifications/{id}",
    tag = "inbox",
    params(("id" = Uuid, Path, description = "The notification id")),
    security(("user_token" = [])),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such notification of the caller", body = crate::Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn delete(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    path: Result<Path<String>, PathRejection>,
) -> Result<StatusCode, ApiError> {
    let id = notification_id(path)?;
    state.store().delete(&user, id).await?;
    Ok(StatusCode::NO_CONTENT)
}
