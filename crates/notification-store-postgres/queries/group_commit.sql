-- Group commit: every write of a batch in ONE statement (one round trip, atomic,
-- one commit): the records, the begin_attempt compare-and-sets and the
-- record_attempts, each notification at most once in the batch (so no row is
-- written twice and no write depends on another of the same statement). Each
-- kind is what its one-by-one query does (notification_insert.sql with ON
-- CONFLICT DO NOTHING, notification_begin_attempt.sql, attempt_record.sql);
-- empty arrays make a kind do nothing. Returns one row per write that took
-- effect: 'record' (the id inserted), 'begin' and 'attempt' (the row after).
-- $1..$15 the records' columns (as notification_insert_batch.sql),
-- $16..$18 the begins (ids, attempts seen, at),
-- $19..$28 the attempts (as attempt_record.sql, one array each; $28 the
-- provider message ids).
WITH ins AS (
    INSERT INTO notifications (id, user_id, kind, title, content, status, is_read, metadata, error, idempotency_key, created_at, read_at, sent_at, attempts, last_attempt_at)
    SELECT * FROM UNNEST(
        $1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
        $7::boolean[], $8::jsonb[], $9::text[], $10::text[], $11::timestamptz[],
        $12::timestamptz[], $13::timestamptz[], $14::integer[], $15::timestamptz[]
    )
    ON CONFLICT DO NOTHING
    RETURNING id
),
beg AS (
    UPDATE notifications n
    SET status = 'sending', attempts = n.attempts + 1, last_attempt_at = b.at
    FROM UNNEST($16::uuid[], $17::integer[], $18::timestamptz[]) AS b(id, seen, at)
    WHERE n.id = b.id AND n.attempts = b.seen
      AND n.status NOT IN ('sent', 'delivered', 'bounced', 'complained')
    RETURNING n.*
),
ab AS (
    SELECT * FROM UNNEST(
        $19::uuid[], $20::integer[], $21::text[], $22::text[], $23::text[], $24::text[],
        $25::timestamptz[], $26::bigint[], $27::timestamptz[], $28::text[]
    ) AS ab(notification_id, number, kind, provider, outcome, error, started_at, duration_ms, finished_at, provider_message_id)
),
logged AS (
    INSERT INTO notification_attempts
        (notification_id, number, kind, provider, outcome, error, started_at, duration_ms, provider_message_id)
    SELECT ab.notification_id, ab.number, ab.kind, ab.provider, ab.outcome, ab.error, ab.started_at, ab.duration_ms, ab.provider_message_id
    FROM ab
    WHERE EXISTS (SELECT 1 FROM notifications WHERE id = ab.notification_id)
    RETURNING notification_id
),
rec AS (
    UPDATE notifications n
    SET status = CASE
            WHEN n.status IN ('delivered', 'bounced', 'complained') THEN n.status
            WHEN n.status = 'sent' OR ab.outcome = 'sent' THEN 'sent'
            WHEN n.attempts = ab.number THEN ab.outcome
            ELSE n.status
        END,
        sent_at = CASE
            WHEN n.status NOT IN ('sent', 'delivered', 'bounced', 'complained') AND ab.outcome = 'sent' THEN ab.finished_at
            ELSE n.sent_at
        END,
        error = CASE
            WHEN n.status IN ('sent', 'delivered', 'bounced', 'complained') THEN n.error
            WHEN ab.outcome = 'sent' THEN NULL
            WHEN n.attempts = ab.number THEN ab.error
            ELSE n.error
        END
    FROM ab
    WHERE n.id = ab.notification_id AND n.id IN (SELECT notification_id FROM logged)
    RETURNING n.*
)
SELECT 'record' AS write_kind, id, NULL::text AS user_id, NULL::text AS kind, NULL::text AS title,
       NULL::text AS content, NULL::text AS status, NULL::boolean AS is_read, NULL::text AS metadata,
       NULL::text AS error, NULL::text AS idempotency_key, NULL::timestamptz AS created_at,
       NULL::timestamptz AS read_at, NULL::timestamptz AS sent_at, NULL::integer AS attempts,
       NULL::timestamptz AS last_attempt_at
FROM ins
UNION ALL
SELECT 'begin', id, user_id, kind, title, content, status, is_read, metadata::text AS metadata, error, idempotency_key, created_at, read_at, sent_at, attempts, last_attempt_at FROM beg
UNION ALL
SELECT 'attempt', id, user_id, kind, title, content, status, is_read, metadata::text AS metadata, error, idempotency_key, created_at, read_at, sent_at, attempts, last_attempt_at FROM rec
