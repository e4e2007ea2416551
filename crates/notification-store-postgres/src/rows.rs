//! Rows of the two tables, and their conversion to and from the model.

use chrono::{DateTime, Utc};
use messaging_model::{
    AttemptOutcome, DeliveryAttempt, DeliveryReport, MessageTemplate, Notification,
    NotificationKind, NotificationStatus, TemplateKind,
};
use notification_store::StoreError;
use uuid::Uuid;

use crate::PostgresStoreError;

/// A row of `notifications`, as selected by the `queries/*.sql` files, or as
/// `row_to_json` writes it in an inbox announcement (migration
/// 20261204000003), its `metadata` taken as the JSON text it is.
#[derive(sqlx::FromRow, serde::Deserialize)]
pub(crate) struct NotificationRow {
    id: Uuid,
    user_id: String,
    kind: String,
    title: String,
    content: String,
    status: String,
    is_read: bool,
    /// `metadata::text`: parsed here, so one row the JSON reader refuses (nested
    /// deeper than it allows, written before the store checked depth or by
    /// hand) loses its metadata, not the whole page it is on.
    #[serde(deserialize_with = "json_text")]
    metadata: String,
    error: Option<String>,
    idempotency_key: Option<String>,
    created_at: DateTime<Utc>,
    read_at: Option<DateTime<Utc>>,
    sent_at: Option<DateTime<Utc>>,
    attempts: i32,
    last_attempt_at: Option<DateTime<Utc>>,
}

/// A row of `group_commit.sql`: which write it answers, the id, and (for
/// `begin` and `attempt`) the notification after the write.
#[derive(sqlx::FromRow)]
pub(crate) struct GroupRow {
    pub(crate) write_kind: String,
    pub(crate) id: Uuid,
    user_id: Option<String>,
    kind: Option<String>,
    title: Option<String>,
    content: Option<String>,
    status: Option<String>,
    is_read: Option<bool>,
    metadata: Option<String>,
    error: Option<String>,
    idempotency_key: Option<String>,
    created_at: Option<DateTime<Utc>>,
    read_at: Option<DateTime<Utc>>,
    sent_at: Option<DateTime<Utc>>,
    attempts: Option<i32>,
    last_attempt_at: Option<DateTime<Utc>>,
}

impl GroupRow {
    /// The notification of a `begin` or `attempt` row (`None` for `record`).
    pub(crate) fn into_notification_row(self) -> Option<NotificationRow> {
        Some(NotificationRow {
            id: self.id,
            user_id: self.user_id?,
            kind: self.kind?,
            title: self.title?,
            content: self.content?,
            status: self.status?,
            is_read: self.is_read?,
            metadata: self.metadata?,
            error: self.error,
            idempotency_key: self.idempotency_key,
            created_at: self.created_at?,
            read_at: self.read_at,
            sent_at: self.sent_at,
            attempts: self.attempts?,
            last_attempt_at: self.last_attempt_at,
        })
    }
}

/// A JSON value as its text (read without parsing its insides, however deep).
fn json_text<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    let raw: Box<serde_json::value::RawValue> = serde::Deserialize::deserialize(deserializer)?;
    Ok(raw.get().to_owned())
}

impl NotificationRow {
    /// The notification's id.
    pub(crate) fn id(&self) -> Uuid {
        self.id
    }
}

impl TryFrom<NotificationRow> for Notification {
    type Error = StoreError;

    fn try_from(row: NotificationRow) -> Result<Self, StoreError> {
        let kind = notification_kind(&row.kind)?;
        let mut n = Notification::new(row.user_id, kind, row.title, row.content);
        n.id = row.id;
        n.status = notification_status(&row.status)?;
        n.is_read = row.is_read;
        n.metadata = match serde_json::from_str(&row.metadata) {
            Ok(metadata) => metadata,
            Err(error) => {
                tracing::warn!(notification_id = %row.id, %error, "notification metadata unreadable; shown as null");
                serde_json::Value::Null
            }
        };
        n.error = row.error;
        n.idempotency_key = row.idempotency_key;
        n.created_at = row.created_at;
        n.read_at = row.read_at;
        n.sent_at = row.sent_at;
        n.attempts = u32::try_from(row.attempts)
            .map_err(|_| unknown("notifications.attempts", &row.attempts.to_string()))?;
        n.last_attempt_at = row.last_attempt_at;
        Ok(n)
    }
}

/// A row of `attempt_list.sql`: a notification joined with one of its attempts
/// (the attempt columns all NULL when it has none).
#[derive(sqlx::FromRow)]
pub(crate) struct AttemptRow {
    notification_id: Uuid,
    user_id: String,
    number: Option<i32>,
    kind: Option<String>,
    provider: Option<String>,
    outcome: Option<String>,
    error: Option<String>,
    started_at: Option<DateTime<Utc>>,
    duration_ms: Option<i64>,
    provider_message_id: Option<String>,
    report_status: Option<String>,
    report_reason: Option<String>,
    report_at: Option<DateTime<Utc>>,
}

impl AttemptRow {
    /// The attempt, or `None` for the row of a notification without attempts.
    pub(crate) fn into_attempt(self) -> Result<Option<DeliveryAttempt>, StoreError> {
        let (Some(number), Some(kind), Some(provider), Some(outcome), Some(started_at)) = (
            self.number,
            self.kind,
            self.provider,
            self.outcome,
            self.started_at,
        ) else {
            return Ok(None);
        };
        let kind = notification_kind(&kind)?;
        let outcome = AttemptOutcome::from_name(&outcome)
            .ok_or_else(|| unknown("notification_attempts.outcome", &outcome))?;
        let number = u32::try_from(number)
            .map_err(|_| unknown("notification_attempts.number", &number.to_string()))?;
        let mut shell = Notification::new(self.user_id, kind, "", "");
        shell.id = self.notification_id;
        let mut attempt =
            DeliveryAttempt::new(&shell, number, provider, outcome).with_started_at(started_at);
        attempt.error = self.error;
        attempt.duration_ms = self.duration_ms.map(|ms| u64::try_from(ms).unwrap_or(0));
        attempt.provider_message_id = self.provider_message_id;
        if let (Some(status), Some(at)) = (self.report_status, self.report_at) {
            let status = NotificationStatus::from_name(&status)
                .ok_or_else(|| unknown("notification_attempts.report_status", &status))?;
            let mut report = DeliveryReport::new(status, at);
            report.reason = self.report_reason;
            attempt.report = Some(report);
        }
        Ok(Some(attempt))
    }
}

/// A row of `message_templates`.
#[derive(sqlx::FromRow)]
pub(crate) struct TemplateRow {
    id: Uuid,
    name: String,
    kind: String,
    locale: Option<String>,
    subject: Option<String>,
    content: String,
    variables: Vec<String>,
    is_active: bool,
    metadata: serde_json::Value,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl TryFrom<TemplateRow> for MessageTemplate {
    type Error = StoreError;

    fn try_from(row: TemplateRow) -> Result<Self, StoreError> {
        let kind = template_kind(&row.kind)?;
        let mut t = MessageTemplate::new(row.name, kind, row.content);
        t.id = row.id;
        t.locale = row.locale;
        t.subject = row.subject;
        t.variables = row.variables;
        t.is_active = row.is_active;
        t.metadata = row.metadata;
        t.created_at = row.created_at;
        t.updated_at = row.updated_at;
        Ok(t)
    }
}

pub(crate) fn unknown(column: &'static str, value: &str) -> StoreError {
    StoreError::Query {
        source: Box::new(PostgresStoreError::UnknownValue {
            column,
            value: value.to_owned(),
        }),
    }
}

fn notification_kind(text: &str) -> Result<NotificationKind, StoreError> {
    [
        NotificationKind::Email,
        NotificationKind::Sms,
        NotificationKind::Push,
        NotificationKind::System,
    ]
    .into_iter()
    .find(|kind| kind.as_str() == text)
    .ok_or_else(|| unknown("notifications.kind", text))
}

fn notification_status(text: &str) -> Result<NotificationStatus, StoreError> {
    NotificationStatus::from_name(text).ok_or_else(|| unknown("notifications.status", text))
}

fn template_kind(text: &str) -> Result<TemplateKind, StoreError> {
    [TemplateKind::Email, TemplateKind::Sms, TemplateKind::Push]
        .into_iter()
        .find(|kind| kind.as_str() == text)
        .ok_or_else(|| unknown("message_templates.kind", text))
}

/// `attempts` as the `integer` column holds it (saturating: no notification is
/// attempted two billion times).
pub(crate) fn attempts_column(attempts: u32) -> i32 {
    i32::try_from(attempts).unwrap_or(i32::MAX)
}

/// A batch of notifications as one array per column, for `UNNEST`.
#[derive(Default)]
pub(crate) struct NotificationColumns<'a> {
    pub(crate) ids: Vec<Uuid>,
    pub(crate) user_ids: Vec<&'a str>,
    pub(crate) kinds: Vec<&'static str>,
    pub(crate) titles: Vec<&'a str>,
    pub(crate) contents: Vec<&'a str>,
    pub(crate) statuses: Vec<&'static str>,
    pub(crate) is_reads: Vec<bool>,
    pub(crate) metadata: Vec<&'a serde_json::Value>,
    pub(crate) errors: Vec<Option<&'a str>>,
    pub(crate) idempotency_keys: Vec<Option<&'a str>>,
    pub(crate) created_ats: Vec<DateTime<Utc>>,
    pub(crate) read_ats: Vec<Option<DateTime<Utc>>>,
    pub(crate) sent_ats: Vec<Option<DateTime<Utc>>>,
    pub(crate) attempts: Vec<i32>,
    pub(crate) last_attempt_ats: Vec<Option<DateTime<Utc>>>,
}

impl<'a> NotificationColumns<'a> {
    /// Every timestamp column floored to the microsecond, as every insert path
    /// writes them.
    pub(crate) fn floored_to_micros(mut self) -> Self {
        use crate::notifications::floor_micros as floor;
        for t in &mut self.created_ats {
            *t = floor(*t);
        }
        for t in self
            .read_ats
            .iter_mut()
            .chain(self.sent_ats.iter_mut())
            .chain(self.last_attempt_ats.iter_mut())
            .flatten()
        {
            *t = floor(*t);
        }
        self
    }

    pub(crate) fn new(notifications: &'a [Notification]) -> Self {
        let mut c = Self::default();
        for n in notifications {
            c.ids.push(n.id);
            c.user_ids.push(&n.user_id);
            c.kinds.push(n.kind.as_str());
            c.titles.push(&n.title);
            c.contents.push(&n.content);
            c.statuses.push(n.status.as_str());
            c.is_reads.push(n.is_read);
            c.metadata.push(&n.metadata);
            c.errors.push(n.error.as_deref());
            c.idempotency_keys.push(n.idempotency_key.as_deref());
            c.created_ats.push(n.created_at);
            c.read_ats.push(n.read_at);
            c.sent_ats.push(n.sent_at);
            c.attempts.push(attempts_column(n.attempts));
            c.last_attempt_ats.push(n.last_attempt_at);
        }
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_enum_value_reads_back() {
        for kind in [
            NotificationKind::Email,
            NotificationKind::Sms,
            NotificationKind::Push,
            NotificationKind::System,
        ] {
            assert_eq!(notification_kind(kind.as_str()).unwrap(), kind);
        }
        for status in NotificationStatus::ALL {
            assert_eq!(notification_status(status.as_str()).unwrap(), status);
        }
        for kind in [TemplateKind::Email, TemplateKind::Sms, TemplateKind::Push] {
            assert_eq!(template_kind(kind.as_str()).unwrap(), kind);
        }
    }

    #[test]
    fn unknown_values_are_query_errors_not_panics() {
        assert!(matches!(
            notification_kind("fax"),
            Err(StoreError::Query { .. })
        ));
        assert!(matches!(
            template_kind("system"),
            Err(StoreError::Query { .. })
        ));
    }
}
