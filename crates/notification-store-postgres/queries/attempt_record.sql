-- Logs an attempt and sets its notification's status from the outcome, in one
-- statement: 'sent' from any attempt (sent_at $9, no error); 'failed' / 'unknown'
-- (with error $6) only from the latest attempt (attempts = $2); a sent row stays
-- sent, and a row a provider reported on since (delivered, bounced, complained)
-- keeps that status. No row returned (and nothing logged) when the notification does not exist.
-- $1 notification_id, $2 number, $3 kind, $4 provider, $5 outcome, $6 error,
-- $7 started_at, $8 duration_ms, $9 finished_at, $10 provider_message_id
WITH logged AS (
    INSERT INTO notification_attempts
        (notification_id, number, kind, provider, outcome, error, started_at, duration_ms, provider_message_id)
    SELECT $1, $2, $3, $4, $5, $6, $7, $8, $10
    WHERE EXISTS (SELECT 1 FROM notifications WHERE id = $1)
    RETURNING notification_id
)
UPDATE notifications n
SET status = CASE
        WHEN n.status IN ('delivered', 'bounced', 'complained') THEN n.status
        WHEN n.status = 'sent' OR $5::text = 'sent' THEN 'sent'
        WHEN n.attempts = $2 THEN $5::text
        ELSE n.status
    END,
    sent_at = CASE
        WHEN n.status NOT IN ('sent', 'delivered', 'bounced', 'complained') AND $5::text = 'sent' THEN $9
        ELSE n.sent_at
    END,
    error = CASE
        WHEN n.status IN ('sent', 'delivered', 'bounced', 'complained') THEN n.error
        WHEN $5::text = 'sent' THEN NULL
        WHEN n.attempts = $2 THEN $6
        ELSE n.error
    END
FROM logged
WHERE n.id = logged.notification_id
RETURNING n.id, n.user_id, n.kind, n.title, n.content, n.status, n.is_read, n.metadata::text AS metadata, n.error, n.idempotency_key, n.created_at, n.read_at, n.sent_at, n.attempts, n.last_attempt_at
