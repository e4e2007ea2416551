-- Marks one of the user's notifications read, keeping the first read time.
-- $1 user_id, $2 id.
UPDATE notifications
SET is_read = true, read_at = COALESCE(read_at, now())
WHERE user_id = $1 AND id = $2
