-- Records a provider's report on the (latest) attempt that logged provider
-- message id $1 and on its notification, in one statement: status $2, reason
-- $3 (the notification's error, cleared for 'delivered'), at $4. Nothing changes
-- when the attempt already holds a report ranking higher than $5 (the rank of
-- $2, DeliveryReport::rank: delivered 1, failed and bounced 2, complained 3).
-- Returns the notification afterwards; no row when no attempt logged $1.
WITH target AS (
    SELECT a.id, a.notification_id,
           CASE a.report_status
               WHEN 'delivered' THEN 1
               WHEN 'failed' THEN 2
               WHEN 'bounced' THEN 2
               WHEN 'complained' THEN 3
               ELSE 0
           END AS current_rank
    FROM notification_attempts a
    WHERE a.provider_message_id = $1
    ORDER BY a.id DESC
    LIMIT 1
),
reported AS (
    UPDATE notification_attempts a
    SET report_status = $2, report_reason = $3, report_at = $4
    FROM target t
    WHERE a.id = t.id AND $5 >= t.current_rank
    RETURNING a.notification_id
),
updated AS (
    UPDATE notifications n
    SET status = $2,
        error = CASE WHEN $2 = 'delivered' THEN NULL ELSE $3 END
    FROM reported r
    WHERE n.id = r.notification_id
    RETURNING n.*
)
SELECT id, user_id, kind, title, content, status, is_read, metadata::text AS metadata, error, idempotency_key, created_at, read_at, sent_at, attempts, last_attempt_at
FROM updated
UNION ALL
SELECT n.id, n.user_id, n.kind, n.title, n.content, n.status, n.is_read, n.metadata::text AS metadata, n.error, n.idempotency_key, n.created_at, n.read_at, n.sent_at, n.attempts, n.last_attempt_at
FROM notifications n
JOIN target t ON n.id = t.notification_id
WHERE NOT EXISTS (SELECT 1 FROM reported)
