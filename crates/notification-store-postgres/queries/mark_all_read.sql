-- Marks every unread notification of the user read. $1 user_id.
UPDATE notifications
SET is_read = true, read_at = COALESCE(read_at, now())
WHERE user_id = $1 AND NOT is_read
