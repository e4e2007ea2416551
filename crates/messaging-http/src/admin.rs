//! The operator API under `/v1/admin`, behind the admin token: topics, their
//! figures, dead letters, pauses and health.

use std::time::Duration;

use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use messaging_core::{DeadLetter, GroupStats, TopicStats};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::auth::Operator;
use crate::{ApiError, AppState};

/// The most dead letters one listing request reads past its filter before it
/// answers with what it found so far and where to go on (`next_after`), and
/// the most a lookup by id looks through (the oldest first).
pub const DEAD_LETTER_SCAN_LIMIT: usize = 10_000;

/// Dead letters read from the backend at a time by a filtered listing or
/// replay.
const DEAD_LETTER_CHUNK: usize = 500;
/// Dead letters per page when no `limit` is given.
pub const DEFAULT_DEAD_LETTER_PAGE: usize = 50;
/// The largest dead-letter page.
pub const MAX_DEAD_LETTER_PAGE: usize = 500;

/// Every topic.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TopicList {
    /// Topic names, sorted.
    pub topics: Vec<String>,
}

/// A topic to create.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
pub struct NewTopic {
    /// Its name (`orders.placed`).
    pub name: String,
    /// Partitions (1 to 1023); absent: a plain topic.
    #[serde(default)]
    pub partitions: Option<u16>,
    /// A priority topic (high, normal, low lanes).
    #[serde(default)]
    pub priority: bool,
}

/// One consumer group of a topic.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct GroupStatsBody {
    /// The group's name.
    pub name: String,
    /// Delivered and not yet settled.
    pub pending: u64,
    /// Not yet delivered to the group.
    pub lag: u64,
    /// Consumers known in the group.
    pub consumers: u64,
    /// Whether the group is paused (by itself or with the topic).
    pub paused: bool,
}

/// The figures of one topic.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TopicStatsBody {
    /// The topic.
    pub topic: String,
    /// Entries retained in its stream.
    pub length: u64,
    /// Messages waiting for their delivery time.
    pub scheduled: u64,
    /// Messages in its dead-letter queue.
    pub dead_lettered: u64,
    /// Whether the topic is paused for every group.
    pub paused: bool,
    /// Each consumer group.
    pub groups: Vec<GroupStatsBody>,
}

impl From<TopicStats> for TopicStatsBody {
    fn from(stats: TopicStats) -> Self {
        Self {
            topic: stats.topic,
            length: stats.length,
            scheduled: stats.scheduled,
            dead_lettered: stats.dead_lettered,
            paused: stats.paused,
            groups: stats.groups.into_iter().map(GroupStatsBody::from).collect(),
        }
    }
}

impl From<GroupStats> for GroupStatsBody {
    fn from(group: GroupStats) -> Self {
        Self {
            name: group.name,
            pending: group.pending,
            lag: group.lag,
            consumers: group.consumers,
            paused: group.paused,
        }
    }
}

/// One dead letter.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DeadLetterBody {
    /// Its id in the topic's dead-letter queue.
    pub id: String,
    /// The consumer group whose handler gave up.
    pub group: String,
    /// The last error.
    pub error: String,
    /// How many attempts were made.
    pub attempts: u32,
    /// When it was dead-lettered.
    pub dead_at: DateTime<Utc>,
    /// The message's id.
    pub message_id: Uuid,
    /// The message's payload.
    #[schema(value_type = Object)]
    pub payload: serde_json::Value,
    /// The message's metadata.
    #[schema(value_type = Object)]
    pub metadata: serde_json::Value,
    /// When the message was first published.
    pub created_at: DateTime<Utc>,
}

impl From<DeadLetter> for DeadLetterBody {
    fn from(dead: DeadLetter) -> Self {
        Self {
            metadata: serde_json::to_value(&dead.message.metadata).unwrap_or_default(),
            id: dead.id,
            group: dead.group,
            error: dead.error,
            attempts: dead.attempts,
            dead_at: dead.dead_at,
            message_id: dead.message.id,
            payload: dead.message.payload,
            created_at: dead.message.created_at,
        }
    }
}

/// A page of dead letters, oldest first.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DeadLetterPage {
    /// The dead letters.
    pub items: Vec<DeadLetterBody>,
    /// Pass as `after` for the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_after: Option<String>,
}

/// Which dead letters: filters shared by the listing and the filtered replay.
#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeadLetterFilter {
    /// Only those whose error contains this text (case-insensitive).
    pub error: Option<String>,
    /// Only those dead-lettered at or after this time (RFC 3339).
    pub since: Option<DateTime<Utc>>,
    /// Only those dead-lettered before this time (RFC 3339).
    pub until: Option<DateTime<Utc>>,
}

impl DeadLetterFilter {
    fn is_empty(&self) -> bool {
        self.error.is_none() && self.since.is_none() && self.until.is_none()
    }

    fn matches(&self, dead: &DeadLetter) -> bool {
        self.error
            .as_ref()
            .is_none_or(|needle| dead.error.to_lowercase().contains(&needle.to_lowercase()))
            && self.since.is_none_or(|since| dead.dead_at >= since)
            && self.until.is_none_or(|until| dead.dead_at < until)
    }
}

/// The page of a dead-letter listing.
#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeadLetterPageParams {
    /// Page size, 1 to 500 (default 50).
    pub limit: Option<usize>,
    /// `next_after` of the previous page.
    pub after: Option<String>,
}

/// How fast to replay.
#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ReplayParams {
    /// At most this many replays per second (absent: as fast as the backend goes).
    pub rate: Option<f64>,
}

/// How many dead letters were replayed.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Replayed {
    /// The count.
    pub replayed: u64,
}

/// How many dead letters were removed.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Purged {
    /// The count.
    pub purged: u64,
}

/// Which group to pause or resume.
#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PauseParams {
    /// The consumer group; absent: the whole topic, every group.
    pub group: Option<String>,
}

/// What is paused on a topic.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PauseStateBody {
    /// The whole topic (every group).
    pub all: bool,
    /// Groups paused by name.
    pub groups: Vec<String>,
}

/// Whether a pause or resume changed anything.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PauseChanged {
    /// `false`: it was so already.
    pub changed: bool,
}

/// The health of the servers behind the API.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct HealthBody {
    /// The messaging backend's name.
    pub backend: String,
    /// Settings of the backend that put messages at risk.
    pub warnings: Vec<String>,
    /// `ok` when the notification store answers.
    pub store: String,
}

fn topic_of(path: Result<Path<String>, PathRejection>) -> Result<String, ApiError> {
    let Path(topic) = path?;
    messaging_model::validate_topic(&topic)
        .map_err(|error| ApiError::bad_request(error.to_string()))?;
    Ok(topic)
}

/// 404 unless `topic` exists.
async fn existing(state: &AppState, topic: &str) -> Result<(), ApiError> {
    let topics = state.messaging().list_topics().await?;
    if topics.iter().any(|t| t.as_str() == topic) {
        Ok(())
    } else {
        Err(ApiError::not_found("topic"))
    }
}

/// Every topic.
#[utoipa::path(get, path = "/v1/admin/topics", tag = "admin", security(("admin_token" = [])),
    responses((status = 200, body = TopicList), (status = 401, body = crate::Problem, content_type = "application/problem+json"), (status = 403, description = "A user token", body = crate::Problem, content_type = "application/problem+json")))]
pub(crate) async fn list_topics(
    _: Operator,
    State(state): State<AppState>,
) -> Result<Json<TopicList>, ApiError> {
    let topics = state.messaging().list_topics().await?;
    Ok(Json(TopicList {
        topics: topics
            .into_iter()
            .map(messaging_model::Topic::into_string)
            .collect(),
    }))
}

/// Creates a topic (again with the same layout: no change).
#[utoipa::path(post, path = "/v1/admin/topics", tag = "admin", security(("admin_token" = [])), request_body = NewTopic,
    responses((status = 201, description = "Created (or there already, with this layout)"), (status = 400, body = crate::Problem, content_type = "application/problem+json"), (status = 409, description = "The topic exists with another layout", body = crate::Problem, content_type = "application/problem+json")))]
pub(crate) async fn create_topic(
    _: Operator,
    State(state): State<AppState>,
    body: Result<Json<NewTopic>, JsonRejection>,
) -> Result<StatusCode, ApiError> {
    let Json(topic) = body?;
    let messaging = state.messaging();
    match (topic.partitions, topic.priority) {
        (Some(_), true) => {
            return Err(ApiError::bad_request(
                "a topic has partitions or priorities, not both",
            ));
        }
        (Some(partitions), false) => {
            messaging
                .create_partitioned_topic(&topic.name, partitions)
                .await?
        }
        (None, true) => messaging.create_priority_topic(&topic.name).await?,
        (None, false) => messaging.create_topic(&topic.name).await?,
    }
    tracing::info!(topic = %topic.name, "topic created over HTTP");
    Ok(StatusCode::CREATED)
}

/// Deletes a topic with everything in it.
#[utoipa::path(delete, path = "/v1/admin/topics/{topic}", tag = "admin", security(("admin_token" = [])),
    params(("topic" = String, Path)),
    responses((status = 204, description = "Deleted"), (status = 404, body = crate::Problem, content_type = "application/problem+json")))]
pub(crate) async fn delete_topic(
    _: Operator,
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
) -> Result<StatusCode, ApiError> {
    let topic = topic_of(path)?;
    if state.messaging().delete_topic(&topic).await? {
        tracing::info!(%topic, "topic deleted over HTTP");
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found("topic"))
    }
}

/// The figures of every topic.
#[utoipa::path(get, path = "/v1/admin/stats", tag = "admin", security(("admin_token" = [])),
    responses((status = 200, body = Vec<TopicStatsBody>), (status = 401, body = crate::Problem, content_type = "application/problem+json")))]
pub(crate) async fn all_stats(
    _: Operator,
    State(state): State<AppState>,
) -> Result<Json<Vec<TopicStatsBody>>, ApiError> {
    let mut all = Vec::new();
    for topic in state.messaging().list_topics().await? {
        all.push(state.messaging().stats(topic.as_str()).await?.into());
    }
    Ok(Json(all))
}

/// The figures of one topic: length, scheduled, dead-lettered, and per group
/// pending, lag and whether paused.
#[utoipa::path(get, path = "/v1/admin/topics/{topic}/stats", tag = "admin", security(("admin_token" = [])),
    params(("topic" = String, Path)),
    responses((status = 200, body = TopicStatsBody), (status = 404, body = crate::Problem, content_type = "application/problem+json")))]
pub(crate) async fn topic_stats(
    _: Operator,
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<TopicStatsBody>, ApiError> {
    let topic = topic_of(path)?;
    existing(&state, &topic).await?;
    Ok(Json(state.messaging().stats(&topic).await?.into()))
}

/// A page of a topic's dead letters, oldest first, filtered by error text and
/// time.
#[utoipa::path(get, path = "/v1/admin/topics/{topic}/dead-letters", tag = "admin", security(("admin_token" = [])),
    params(("topic" = String, Path), DeadLetterFilter, DeadLetterPageParams),
    responses((status = 200, body = DeadLetterPage), (status = 400, body = crate::Problem, content_type = "application/problem+json"), (status = 404, body = crate::Problem, content_type = "application/problem+json")))]
pub(crate) async fn dead_letters(
    _: Operator,
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
    filter: Result<Query<DeadLetterFilter>, QueryRejection>,
    page: Result<Query<DeadLetterPageParams>, QueryRejection>,
) -> Result<Json<DeadLetterPage>, ApiError> {
    let topic = topic_of(path)?;
    let (Query(filter), Query(page)) = (filter?, page?);
    let limit = page.limit.unwrap_or(DEFAULT_DEAD_LETTER_PAGE);
    if limit == 0 || limit > MAX_DEAD_LETTER_PAGE {
        return Err(ApiError::bad_request(format!(
            "limit must be 1 to {MAX_DEAD_LETTER_PAGE}"
        )));
    }
    existing(&state, &topic).await?;
    let (found, next_after) = page_of(&state, &topic, &filter, page.after, limit).await?;
    let items = found.into_iter().map(Into::into).collect();
    Ok(Json(DeadLetterPage { items, next_after }))
}

/// Up to `limit` dead letters after `after` that `filter` selects, read from
/// the backend from `after` on (never the ones before it), at most
/// [`DEAD_LETTER_SCAN_LIMIT`] of them; and the id to go on from when more may
/// follow (the last one returned, or the last one read when the budget ran
/// out first).
async fn page_of(
    state: &AppState,
    topic: &str,
    filter: &DeadLetterFilter,
    after: Option<String>,
    limit: usize,
) -> Result<(Vec<DeadLetter>, Option<String>), ApiError> {
    let mut found: Vec<DeadLetter> = Vec::new();
    let mut cursor = after;
    let mut read = 0;
    loop {
        // Unfiltered: what is still wanted and one more, to know whether a
        // next page exists.
        let want = if filter.is_empty() {
            limit - found.len() + 1
        } else {
            DEAD_LETTER_CHUNK.min(DEAD_LETTER_SCAN_LIMIT - read).max(1)
        };
        let chunk = state
            .messaging()
            .dead_letters_after(topic, cursor.as_deref(), want)
            .await
            .map_err(|error| match error {
                messaging_core::MessagingError::Backend(
                    messaging_core::BackendError::Command { .. },
                ) => ApiError::bad_request("`after` is no dead-letter id of this topic"),
                other => other.into(),
            })?;
        let full = chunk.len() == want;
        read += chunk.len();
        let count = chunk.len();
        for (at, dead) in chunk.into_iter().enumerate() {
            cursor = Some(dead.id.clone());
            if !filter.matches(&dead) {
                continue;
            }
            found.push(dead);
            if found.len() == limit {
                let more = at + 1 < count || full;
                let next = more.then(|| found.last().map(|d| d.id.clone())).flatten();
                return Ok((found, next));
            }
        }
        if !full {
            return Ok((found, None));
        }
        if read >= DEAD_LETTER_SCAN_LIMIT {
            return Ok((found, cursor));
        }
    }
}

fn dead_letter_path(
    path: Result<Path<(String, String)>, PathRejection>,
) -> Result<(String, String), ApiError> {
    let Path((topic, id)) = path?;
    messaging_model::validate_topic(&topic)
        .map_err(|error| ApiError::bad_request(error.to_string()))?;
    Ok((topic, id))
}

/// One dead letter.
#[utoipa::path(get, path = "/v1/admin/topics/{topic}/dead-letters/{id}", tag = "admin", security(("admin_token" = [])),
    params(("topic" = String, Path), ("id" = String, Path)),
    responses((status = 200, body = DeadLetterBody), (status = 404, body = crate::Problem, content_type = "application/problem+json")))]
pub(crate) async fn show_dead_letter(
    _: Operator,
    State(state): State<AppState>,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Result<Json<DeadLetterBody>, ApiError> {
    let (topic, id) = dead_letter_path(path)?;
    let found = state
        .messaging()
        .find_dead_letter(&topic, &id)
        .await?
        .ok_or_else(|| ApiError::not_found("dead letter"))?;
    Ok(Json(found.into()))
}

/// Puts one dead letter back into its topic for the group that gave up on it.
#[utoipa::path(post, path = "/v1/admin/topics/{topic}/dead-letters/{id}/replay", tag = "admin", security(("admin_token" = [])),
    params(("topic" = String, Path), ("id" = String, Path)),
    responses((status = 204, description = "Replayed"), (status = 404, body = crate::Problem, content_type = "application/problem+json")))]
pub(crate) async fn replay_dead_letter(
    _: Operator,
    State(state): State<AppState>,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Result<StatusCode, ApiError> {
    let (topic, id) = dead_letter_path(path)?;
    state.messaging().replay_dead_letter(&topic, &id).await?;
    tracing::info!(%topic, %id, "dead letter replayed over HTTP");
    Ok(StatusCode::NO_CONTENT)
}

/// Replays every dead letter of the topic, or those the filters select, at
/// most `rate` per second.
#[utoipa::path(post, path = "/v1/admin/topics/{topic}/dead-letters/replay", tag = "admin", security(("admin_token" = [])),
    params(("topic" = String, Path), DeadLetterFilter, ReplayParams),
    responses((status = 200, body = Replayed), (status = 400, body = crate::Problem, content_type = "application/problem+json"), (status = 404, body = crate::Problem, content_type = "application/problem+json")))]
pub(crate) async fn replay_dead_letters(
    _: Operator,
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
    filter: Result<Query<DeadLetterFilter>, QueryRejection>,
    replay: Result<Query<ReplayParams>, QueryRejection>,
) -> Result<Json<Replayed>, ApiError> {
    let topic = topic_of(path)?;
    let (Query(filter), Query(replay)) = (filter?, replay?);
    let pause = match replay.rate {
        None => None,
        Some(rate) if rate.is_finite() && rate > 0.0 && rate <= 100_000.0 => {
            Some(Duration::from_secs_f64(1.0 / rate))
        }
        Some(_) => {
            return Err(ApiError::bad_request(
                "rate must be above 0 and at most 100000 per second",
            ));
        }
    };
    existing(&state, &topic).await?;
    let replayed = if filter.is_empty() && pause.is_none() {
        state.messaging().replay_all_dead_letters(&topic).await?
    } else {
        let mut ticks = pause.map(|every| {
            let mut interval = tokio::time::interval(every);
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            interval
        });
        // Every dead letter the filter selects, page by page from the
        // oldest: paging on from one just replayed goes on where it was.
        let mut replayed = 0;
        let mut after: Option<String> = None;
        loop {
            let chunk = state
                .messaging()
                .dead_letters_after(&topic, after.as_deref(), DEAD_LETTER_CHUNK)
                .await?;
            let last = chunk.len() < DEAD_LETTER_CHUNK;
            for dead in chunk {
                after = Some(dead.id.clone());
                if !filter.matches(&dead) {
                    continue;
                }
                if let Some(ticks) = &mut ticks {
                    ticks.tick().await;
                }
                match state.messaging().replay_dead_letter(&topic, &dead.id).await {
                    Ok(()) => replayed += 1,
                    // Replayed or purged by someone else meanwhile.
                    Err(messaging_core::MessagingError::DeadLetterNotFound { .. }) => {}
                    Err(error) => return Err(error.into()),
                }
            }
            if last {
                break;
            }
        }
        replayed
    };
    tracing::info!(%topic, replayed, "dead letters replayed over HTTP");
    Ok(Json(Replayed { replayed }))
}

/// Removes every dead letter of the topic.
#[utoipa::path(delete, path = "/v1/admin/topics/{topic}/dead-letters", tag = "admin", security(("admin_token" = [])),
    params(("topic" = String, Path)),
    responses((status = 200, body = Purged), (status = 404, body = crate::Problem, content_type = "application/problem+json")))]
pub(crate) async fn purge_dead_letters(
    _: Operator,
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<Purged>, ApiError> {
    let topic = topic_of(path)?;
    existing(&state, &topic).await?;
    let purged = state.messaging().purge_dead_letters(&topic).await?;
    tracing::info!(%topic, purged, "dead letters purged over HTTP");
    Ok(Json(Purged { purged }))
}

/// What is paused on the topic.
#[utoipa::path(get, path = "/v1/admin/topics/{topic}/pause", tag = "admin", security(("admin_token" = [])),
    params(("topic" = String, Path)),
    responses((status = 200, body = PauseStateBody), (status = 501, description = "The backend has no pauses", body = crate::Problem, content_type = "application/problem+json")))]
pub(crate) async fn pause_state(
    _: Operator,
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<PauseStateBody>, ApiError> {
    let topic = topic_of(path)?;
    let paused = state.messaging().pause_state(&topic).await?;
    Ok(Json(PauseStateBody {
        all: paused.all,
        groups: paused.groups.into_iter().collect(),
    }))
}

/// Pauses the topic for `group` (absent: every group).
#[utoipa::path(post, path = "/v1/admin/topics/{topic}/pause", tag = "admin", security(("admin_token" = [])),
    params(("topic" = String, Path), PauseParams),
    responses((status = 200, body = PauseChanged), (status = 400, body = crate::Problem, content_type = "application/problem+json")))]
pub(crate) async fn pause(
    _: Operator,
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
    params: Result<Query<PauseParams>, QueryRejection>,
) -> Result<Json<PauseChanged>, ApiError> {
    let topic = topic_of(path)?;
    let Query(params) = params?;
    let changed = state
        .messaging()
        .pause(&topic, params.group.as_deref())
        .await?;
    Ok(Json(PauseChanged { changed }))
}

/// Resumes what a pause of `group` (absent: every pause of the topic) held.
#[utoipa::path(post, path = "/v1/admin/topics/{topic}/resume", tag = "admin", security(("admin_token" = [])),
    params(("topic" = String, Path), PauseParams),
    responses((status = 200, body = PauseChanged), (status = 400, body = crate::Problem, content_type = "application/problem+json")))]
pub(crate) async fn resume(
    _: Operator,
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
    params: Result<Query<PauseParams>, QueryRejection>,
) -> Result<Json<PauseChanged>, ApiError> {
    let topic = topic_of(path)?;
    let Query(params) = params?;
    let changed = state
        .messaging()
        .resume(&topic, params.group.as_deref())
        .await?;
    Ok(Json(PauseChanged { changed }))
}

/// Whether Redis and PostgreSQL answer (503 when one does not).
#[utoipa::path(get, path = "/v1/admin/health", tag = "admin", security(("admin_token" = [])),
    responses((status = 200, body = HealthBody), (status = 503, body = crate::Problem, content_type = "application/problem+json")))]
pub(crate) async fn health(
    _: Operator,
    State(state): State<AppState>,
) -> Result<Json<HealthBody>, ApiError> {
    let backend = state.messaging().health().await?;
    // A query that touches the inbox table: the store answers and is migrated.
    state.store().unread_count("health-check").await?;
    Ok(Json(HealthBody {
        backend: backend.backend,
        warnings: backend.warnings,
        store: "ok".to_owned(),
    }))
}
