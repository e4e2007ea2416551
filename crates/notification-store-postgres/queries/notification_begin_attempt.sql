-- Starts an attempt: status sending, one more attempt, last_attempt_at $3.
-- A compare-and-set on the attempt count: nothing changes (no row returned) when
-- the row was accepted (sent, or reported on since) or another process began attempt $2 + 1 first.
-- $1 id, $2 attempts seen, $3 at.
UPDATE notifications
SET status = 'sending', attempts = attempts + 1, last_attempt_at = $3
WHERE id = $1 AND attempts = $2 AND status NOT IN ('sent', 'delivered', 'bounced', 'complained')
RETURNING id, user_id, kind, title, content, status, is_read, metadata::text AS metadata, error, idempotency_key, created_at, read_at, sent_at, attempts, last_attempt_at
