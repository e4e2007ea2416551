-- The user's notification with this idempotency key. $1 user_id, $2 key.
SELECT id, user_id, kind, title, content, status, is_read, metadata::text AS metadata, error, idempotency_key, created_at, read_at, sent_at, attempts, last_attempt_at
FROM notifications
WHERE user_id = $1 AND idempotency_key = $2
