-- The provider message id logged by the latest accepted ('sent') attempt of
-- notification $1 (no row: unknown, or never accepted with an id). Served by
-- notification_attempts_notification_idx.
SELECT a.provider_message_id
FROM notification_attempts a
WHERE a.notification_id = $1 AND a.outcome = 'sent' AND a.provider_message_id IS NOT NULL
ORDER BY a.number DESC, a.id DESC
LIMIT 1
