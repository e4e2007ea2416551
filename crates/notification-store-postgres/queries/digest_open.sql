-- Opens a window for (user, key) unless one is open. $1 id, $2 user, $3 key,
-- $4 opening event id, $5 at.
INSERT INTO notification_digest_windows (id, user_id, digest_key, opened_by, opened_at)
VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (user_id, digest_key) WHERE closed_at IS NULL DO NOTHING
