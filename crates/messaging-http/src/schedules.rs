//! Schedules in the operator API: list, pause, resume, remove (adding one is
//! `messaging schedules add`). Off (404) unless the state has a schedule backend.

use axum::Json;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use messaging_core::schedule::ScheduleBackend;
use serde::{Deserialize, Serialize};

use crate::admin::PauseChanged;
use crate::auth::Operator;
use crate::{ApiError, AppState};

/// One schedule and when it ticks.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ScheduleBody {
    /// The schedule as stored: name, topic, payload, cron or interval, time
    /// zone, missed-tick policy, paused.
    #[schema(value_type = Object)]
    pub schedule: serde_json::Value,
    /// The last tick published.
    pub last_tick: Option<DateTime<Utc>>,
    /// The next tick; absent while paused.
    pub next_tick: Option<DateTime<Utc>>,
}

fn backend(state: &AppState) -> Result<&dyn ScheduleBackend, ApiError> {
    state
        .schedules()
        .ok_or_else(|| ApiError::not_found("route"))
}

fn name_of(path: Result<Path<String>, PathRejection>) -> Result<String, ApiError> {
    let Path(name) = path?;
    Ok(name)
}

/// Every schedule.
#[utoipa::path(get, path = "/v1/admin/schedules", tag = "admin", security(("admin_token" = [])),
    responses((status = 200, body = Vec<ScheduleBody>), (status = 404, description = "No schedule backend", body = crate::Problem, content_type = "application/problem+json")))]
pub(crate) async fn list(
    _: Operator,
    State(state): State<AppState>,
) -> Result<Json<Vec<ScheduleBody>>, ApiError> {
    let now = Utc::now();
    let states = backend(&state)?
        .schedules()
        .await
        .map_err(messaging_core::MessagingError::from)?;
    Ok(Json(
        states
            .into_iter()
            .map(|state| ScheduleBody {
                next_tick: if state.schedule.paused {
                    None
                } else {
                    state.schedule.next_tick_after(now)
                },
                last_tick: state.last_tick,
                schedule: serde_json::to_value(&state.schedule).unwrap_or_default(),
            })
            .collect(),
    ))
}

async fn set_paused(
    state: &AppState,
    name: &str,
    paused: bool,
) -> Result<Json<PauseChanged>, ApiError> {
    let backend = backend(state)?;
    let before = backend
        .schedules()
        .await
        .map_err(messaging_core::MessagingError::from)?
        .into_iter()
        .find(|s| s.schedule.name == name)
        .ok_or_else(|| ApiError::not_found("schedule"))?;
    if !backend
        .set_schedule_paused(name, paused)
        .await
        .map_err(messaging_core::MessagingError::from)?
    {
        return Err(ApiError::not_found("schedule"));
    }
    tracing::info!(schedule = name, paused, "schedule pause changed over HTTP");
    Ok(Json(PauseChanged {
        changed: before.schedule.paused != paused,
    }))
}

/// Pauses a schedule: no tick is published until it is resumed.
#[utoipa::path(post, path = "/v1/admin/schedules/{name}/pause", tag = "admin", security(("admin_token" = [])),
    params(("name" = String, Path)),
    responses((status = 200, body = PauseChanged), (status = 404, body = crate::Problem, content_type = "application/problem+json")))]
pub(crate) async fn pause(
    _: Operator,
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<PauseChanged>, ApiError> {
    set_paused(&state, &name_of(path)?, true).await
}

/// Resumes a schedule (missed ticks as its policy says).
#[utoipa::path(post, path = "/v1/admin/schedules/{name}/resume", tag = "admin", security(("admin_token" = [])),
    params(("name" = String, Path)),
    responses((status = 200, body = PauseChanged), (status = 404, body = crate::Problem, content_type = "application/problem+json")))]
pub(crate) async fn resume(
    _: Operator,
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<PauseChanged>, ApiError> {
    set_paused(&state, &name_of(path)?, false).await
}

/// Removes a schedule.
#[utoipa::path(delete, path = "/v1/admin/schedules/{name}", tag = "admin", security(("admin_token" = [])),
    params(("name" = String, Path)),
    responses((status = 204, description = "Removed"), (status = 404, body = crate::Problem, content_type = "application/problem+json")))]
pub(crate) async fn remove(
    _: Operator,
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
) -> Result<StatusCode, ApiError> {
    let name = name_of(path)?;
    if backend(&state)?
        .remove_schedule(&name)
        .await
        .map_err(messaging_core::MessagingError::from)?
    {
        tracing::info!(schedule = %name, "schedule removed over HTTP");
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found("schedule"))
    }
}
