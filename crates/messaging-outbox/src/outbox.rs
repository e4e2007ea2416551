//! [`Outbox`]: where the outbox table is, and writing to it inside the caller's transaction.

use std::sync::Arc;
use std::time::Duration;

use sqlx::{AssertSqlSafe, PgConnection};
use tracing::Instrument;
use uuid::Uuid;

use crate::error::database_error;
use crate::{OutboxError, OutboxMessage};

/// The outbox table's name.
pub const TABLE: &str = "outbox_messages";

/// Where the outbox table is, and how to write to it.
///
/// Writing is done inside the caller's own sqlx transaction (any
/// `&mut PgConnection`, which `&mut Transaction<'_, Postgres>` derefs to): the
/// row, and the `NOTIFY` that wakes the relays, become visible only if that
/// transaction commits. Cloning is cheap.
///
/// ```no_run
/// use messaging_outbox::Outbox;
/// use serde_json::json;
///
/// # async fn register(pool: sqlx::PgPool) -> Result<(), Box<dyn std::error::Error>> {
/// let outbox = Outbox::in_schema("app")?;
/// let mut tx = pool.begin().await?;
/// let user_id: i64 = sqlx::query_scalar("INSERT INTO app.users (email) VALUES ($1) RETURNING id")
///     .bind("ada@example.com")
///     .fetch_one(&mut *tx)
///     .await?;
/// outbox
///     .publish_ordered(&mut tx, "user.registered", &user_id.to_string(), json!({"user_id": user_id}))
///     .await?;
/// tx.commit().await?; // the event exists only now
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct Outbox {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    schema: Option<String>,
    /// `schema.outbox_messages`, or `outbox_messages` (resolved by `search_path`).
    table: String,
    /// The `NOTIFY` channel of this outbox.
    channel: String,
    notify: bool,
    /// A SQL expression naming the schema: `'app'`, or `current_schema()`.
    schema_expr: String,
    insert_one: String,
    insert_batch: String,
    lock_keys: String,
}

impl Default for Outbox {
    fn default() -> Self {
        Self::build(None, true)
    }
}

impl Outbox {
    /// The outbox in the connection's `search_path` (usually `public`).
    pub fn new() -> Self {
        Self::default()
    }

    /// The outbox in `schema` (1 to 56 bytes of `[a-z0-9_]`, not starting with a
    /// digit or `pg_`): every statement names the table with its schema, so the
    /// caller's `search_path` does not matter.
    ///
    /// ```
    /// use messaging_outbox::Outbox;
    /// assert_eq!(Outbox::in_schema("app")?.table(), "app.outbox_messages");
    /// assert!(Outbox::in_schema("Robert'); DROP TABLE students;--").is_err());
    /// # Ok::<(), messaging_outbox::OutboxError>(())
    /// ```
    pub fn in_schema(schema: impl Into<String>) -> Result<Self, OutboxError> {
        let schema = schema.into();
        check_schema_name(&schema)?;
        Ok(Self::build(Some(schema), true))
    }

    /// Whether writes `NOTIFY` the relays (default `true`). Without it relays
    /// find new rows by polling only. PostgreSQL serializes the commits of
    /// transactions that sent a notification (a lock taken at commit), so a
    /// write-heavy application may prefer a short poll instead.
    pub fn with_notify(self, notify: bool) -> Self {
        Self::build(self.inner.schema.clone(), notify)
    }

    fn build(schema: Option<String>, notify: bool) -> Self {
        let table = match &schema {
            Some(schema) => format!("{schema}.{TABLE}"),
            None => TABLE.to_owned(),
        };
        let channel = format!("outbox_{}", schema.as_deref().unwrap_or("default"));
        // The name was checked: [a-z0-9_] only, no quoting needed.
        let schema_expr = match &schema {
            Some(schema) => format!("'{schema}'"),
            None => "current_schema()".to_owned(),
        };
        let writers = format!("hashtext('messaging-outbox:writers:' || {schema_expr})");
        let notify_sql = if notify {
            format!("pg_notify('{channel}', '')")
        } else {
            "NULL".to_owned()
        };
        // The key's writer lock is taken in the FROM item, before the row (and
        // its `seq`) is made: a second writer of the key waits for the first to
        // commit and then draws a larger `seq`, so per key `seq` order is commit order.
        let insert_one = format!(
            "INSERT INTO {table} (id, topic, ordering_key, payload, metadata, max_retry, deliver_at, created_at) \
             SELECT $1, $2, $3, $4, $5, $6, $7, $8 \
             FROM (SELECT {notify_sql}, CASE WHEN $3::text IS NULL THEN NULL \
                   ELSE pg_advisory_xact_lock({writers}, hashtext($3::text)) END) AS before_insert(n, l)"
        );
        let insert_batch = format!(
            "INSERT INTO {table} (id, topic, ordering_key, payload, metadata, max_retry, deliver_at, created_at) \
             SELECT id, topic, ordering_key, payload, metadata, max_retry, deliver_at, created_at \
             FROM unnest($1::uuid[], $2::text[], $3::text[], $4::jsonb[], $5::jsonb[], $6::int4[], \
                         $7::timestamptz[], $8::timestamptz[]) WITH ORDINALITY \
                  AS m(id, topic, ordering_key, payload, metadata, max_retry, deliver_at, created_at, position) \
             CROSS JOIN (SELECT {notify_sql}) AS before_insert(n) \
             ORDER BY position"
        );
        // Keys sorted by the caller: two batches lock their common keys in the
        // same order, so they cannot deadlock on each other.
        let lock_keys = format!(
            "SELECT count(pg_advisory_xact_lock({writers}, hashtext(key))) \
             FROM unnest($1::text[]) WITH ORDINALITY AS k(key, position)"
        );
        Self {
            inner: Arc::new(Inner {
                schema,
                table,
                channel,
                notify,
                schema_expr,
                insert_one,
                insert_batch,
                lock_keys,
            }),
        }
    }

    /// The schema given to [`in_schema`](Self::in_schema), if any.
    pub fn schema(&self) -> Option<&str> {
        self.inner.schema.as_deref()
    }

    /// The table as statements name it.
    pub fn table(&self) -> &str {
        &self.inner.table
    }

    /// The `NOTIFY` channel relays of this outbox listen on: `outbox_<schema>`,
    /// or `outbox_default`.
    pub fn channel(&self) -> &str {
        &self.inner.channel
    }

    /// Whether writes notify the relays.
    pub fn notifies(&self) -> bool {
        self.inner.notify
    }

    pub(crate) fn schema_expr(&self) -> &str {
        &self.inner.schema_expr
    }

    /// Writes a message for `topic` (no ordering key: no order promised relative
    /// to other rows) and returns its id.
    pub async fn publish(
        &self,
        conn: &mut PgConnection,
        topic: &str,
        payload: serde_json::Value,
    ) -> Result<Uuid, OutboxError> {
        self.publish_message(conn, OutboxMessage::new(topic, payload)?)
            .await
    }

    /// Writes a message whose rows of `ordering_key` are published in commit order.
    pub async fn publish_ordered(
        &self,
        conn: &mut PgConnection,
        topic: &str,
        ordering_key: &str,
        payload: serde_json::Value,
    ) -> Result<Uuid, OutboxError> {
        let message = OutboxMessage::new(topic, payload)?.with_ordering_key(ordering_key)?;
        self.publish_message(conn, message).await
    }

    /// Writes a message to be delivered `delay` after now, never earlier.
    pub async fn publish_delayed(
        &self,
        conn: &mut PgConnection,
        topic: &str,
        payload: serde_json::Value,
        delay: Duration,
    ) -> Result<Uuid, OutboxError> {
        let message = OutboxMessage::new(topic, payload)?.with_delay(delay)?;
        self.publish_message(conn, message).await
    }

    /// Writes one message built with [`OutboxMessage`]; one statement.
    pub async fn publish_message(
        &self,
        conn: &mut PgConnection,
        message: OutboxMessage,
    ) -> Result<Uuid, OutboxError> {
        let id = message.message.id;
        let span = tracing::debug_span!("outbox_publish", message_id = %id, topic = %message.message.topic);
        let m = &message.message;
        sqlx::query(AssertSqlSafe(self.inner.insert_one.as_str()))
            .bind(m.id)
            .bind(m.topic.as_str())
            .bind(message.ordering_key.as_deref())
            .bind(&m.payload)
            .bind(metadata_json(m))
            .bind(max_retry(m))
            .bind(message.deliver_at)
            .bind(m.created_at)
            .execute(&mut *conn)
            .instrument(span)
            .await
            .map_err(database_error)?;
        Ok(id)
    }

    /// Writes several messages in this order, in two statements (the writer
    /// locks of their ordering keys, then one insert); returns their ids. At most
    /// [`messaging_model::MAX_BATCH_MESSAGES`] messages.
    pub async fn publish_batch(
        &self,
        conn: &mut PgConnection,
        messages: Vec<OutboxMessage>,
    ) -> Result<Vec<Uuid>, OutboxError> {
        messaging_model::validate_batch(messages.len(), 0)?;
        if messages.is_empty() {
            return Ok(Vec::new());
        }
        let mut keys: Vec<&str> = messages
            .iter()
            .filter_map(|m| m.ordering_key.as_deref())
            .collect();
        keys.sort_unstable();
        keys.dedup();
        if !keys.is_empty() {
            sqlx::query(AssertSqlSafe(self.inner.lock_keys.as_str()))
                .bind(&keys)
                .execute(&mut *conn)
                .await
                .map_err(database_error)?;
        }
        let n = messages.len();
        let (mut ids, mut topics, mut ordering, mut payloads, mut metadata) = (
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
        );
        let (mut retries, mut deliver, mut created) = (
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
        );
        for message in &messages {
            let m = &message.message;
            ids.push(m.id);
            topics.push(m.topic.as_str());
            ordering.push(message.ordering_key.as_deref());
            payloads.push(&m.payload);
            metadata.push(metadata_json(m));
            retries.push(max_retry(m));
            deliver.push(message.deliver_at);
            created.push(m.created_at);
        }
        sqlx::query(AssertSqlSafe(self.inner.insert_batch.as_str()))
            .bind(&ids)
            .bind(&topics)
            .bind(&ordering)
            .bind(&payloads)
            .bind(&metadata)
            .bind(&retries)
            .bind(&deliver)
            .bind(&created)
            .execute(&mut *conn)
            .await
            .map_err(database_error)?;
        Ok(ids)
    }
}

fn metadata_json(message: &messaging_model::Message) -> serde_json::Value {
    serde_json::Value::Object(
        message
            .metadata
            .iter()
            .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
            .collect(),
    )
}

/// Checked by the model to be at most `MAX_RETRY_LIMIT`, well inside `i32`.
fn max_retry(message: &messaging_model::Message) -> i32 {
    i32::try_from(message.max_retry).unwrap_or(i32::MAX)
}

/// 1 to 56 bytes of `[a-z0-9_]`, not starting with a digit or `pg_`: needs no
/// quoting anywhere, and `outbox_<schema>` stays a valid channel name (63 bytes).
pub(crate) fn check_schema_name(schema: &str) -> Result<(), OutboxError> {
    let valid = !schema.is_empty()
        && schema.len() <= 56
        && !schema.starts_with(|c: char| c.is_ascii_digit())
        && !schema.starts_with("pg_")
        && schema
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if valid {
        Ok(())
    } else {
        Err(OutboxError::InvalidSchemaName {
            schema: schema.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_names_are_plain_identifiers() {
        for good in ["app", "t_0123", "_x", &"a".repeat(56)] {
            Outbox::in_schema(good).unwrap();
        }
        for bad in [
            "",
            "Upper",
            "a b",
            "a;b",
            "1a",
            "pg_x",
            "a\"b",
            &"a".repeat(57),
        ] {
            assert!(
                matches!(
                    Outbox::in_schema(bad),
                    Err(OutboxError::InvalidSchemaName { .. })
                ),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn names_follow_the_schema() {
        let outbox = Outbox::in_schema("shop").unwrap();
        assert_eq!(
            (outbox.table(), outbox.channel()),
            ("shop.outbox_messages", "outbox_shop")
        );
        let default = Outbox::new();
        assert_eq!(
            (default.table(), default.channel()),
            ("outbox_messages", "outbox_default")
        );
        assert!(default.notifies());
        assert!(!default.with_notify(false).notifies());
    }
}
