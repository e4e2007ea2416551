-- Marks one of the user's notifications unread. $1 user_id, $2 id.
UPDATE notifications
SET is_read = false, read_at = NULL
WHERE user_id = $1 AND id = $2
