-- Not to be sent after all: status skipped with the reason $2, only from
-- pending or scheduled (no row: it was handed over meanwhile, or is missing). $1 id.
UPDATE notifications
SET status = 'skipped', error = $2
WHERE id = $1 AND status IN ('pending', 'scheduled')
RETURNING id, user_id, kind, title, content, status, is_read, metadata::text AS metadata, error, idempotency_key, created_at, read_at, sent_at, attempts, last_attempt_at
