-- Not to be sent: the recipient is suppressed. Status suppressed with the reason
-- $2, only from pending, scheduled or failed (never handed over, or refused; no
-- row: it is being handed over, was accepted, or is missing). $1 id.
UPDATE notifications
SET status = 'suppressed', error = $2
WHERE id = $1 AND status IN ('pending', 'scheduled', 'failed')
RETURNING id, user_id, kind, title, content, status, is_read, metadata::text AS metadata, error, idempotency_key, created_at, read_at, sent_at, attempts, last_attempt_at
