-- Closes one of the user's windows (the first close sets closed_at) and returns it.
-- $1 user, $2 window, $3 at.
UPDATE notification_digest_windows
SET closed_at = COALESCE(closed_at, $3)
WHERE id = $2 AND user_id = $1
RETURNING id, user_id, digest_key, opened_at, closed_at
