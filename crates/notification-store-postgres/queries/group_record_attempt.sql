-- Group commit: many record_attempts in one statement (each notification at most
-- once), with the rules of attempt_record.sql. Only the notifications that exist
-- come back (and only their attempts are logged).
-- $1 notification_id, $2 number, $3 kind, $4 provider, $5 outcome, $6 error,
-- $7 started_at, $8 duration_ms, $9 finished_at: one array each.
WITH b AS (
    SELECT * FROM UNNEST(
        $1::uuid[], $2::integer[], $3::text[], $4::text[], $5::text[], $6::text[],
        $7::timestamptz[], $8::bigint[], $9::timestamptz[]
    ) AS b(notification_id, number, kind, provider, outcome, error, started_at, duration_ms, finished_at)
),
logged AS (
    INSERT INTO notification_attempts
        (notification_id, number, kind, provider, outcome, error, started_at, duration_ms)
    SELECT b.notification_id, b.number, b.kind, b.provider, b.outcome, b.error, b.started_at, b.duration_ms
    FROM b
    WHERE EXISTS (SELECT 1 FROM notifications WHERE id = b.notification_id)
    RETURNING notification_id
)
UPDATE notifications n
SET status = CASE
        WHEN n.status = 'sent' OR b.outcome = 'sent' THEN 'sent'
        WHEN n.attempts = b.number THEN b.outcome
        ELSE n.status
    END,
    sent_at = CASE
        WHEN n.status <> 'sent' AND b.outcome = 'sent' THEN b.finished_at
        ELSE n.sent_at
    END,
    error = CASE
        WHEN n.status = 'sent' THEN n.error
        WHEN b.outcome = 'sent' THEN NULL
        WHEN n.attempts = b.number THEN b.error
        ELSE n.error
    END
FROM b
WHERE n.id = b.notification_id AND n.id IN (SELECT notification_id FROM logged)
RETURNING n.id, n.user_id, n.kind, n.title, n.content, n.status, n.is_read, n.metadata::text AS metadata, n.error, n.idempotency_key, n.created_at, n.read_at, n.sent_at, n.attempts, n.last_attempt_at
