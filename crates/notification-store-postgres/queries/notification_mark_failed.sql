-- It could not be sent: status failed with error $2. $1 id.
UPDATE notifications
SET status = 'failed', error = $2
WHERE id = $1
RETURNING id, user_id, kind, title, content, status, is_read, metadata::text AS metadata, error, idempotency_key, created_at, read_at, sent_at, attempts, last_attempt_at
