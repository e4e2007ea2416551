-- The notification whose attempt log holds provider message id $1 (the latest
-- such attempt's, should a provider ever repeat an id).
SELECT n.id, n.user_id, n.kind, n.title, n.content, n.status, n.is_read, n.metadata::text AS metadata, n.error, n.idempotency_key, n.created_at, n.read_at, n.sent_at, n.attempts, n.last_attempt_at
FROM notifications n
WHERE n.id = (
    SELECT a.notification_id FROM notification_attempts a
    WHERE a.provider_message_id = $1
    ORDER BY a.id DESC
    LIMIT 1
)
