-- The provider accepted it: status sent, sent_at $2, no error. $1 id.
UPDATE notifications
SET status = 'sent', sent_at = $2, error = NULL
WHERE id = $1
RETURNING id, user_id, kind, title, content, status, is_read, metadata::text AS metadata, error, idempotency_key, created_at, read_at, sent_at, attempts, last_attempt_at
