-- Makes sure the user has a row (with a new subscriber id), so it can be locked.
-- $1 user id, $2 a fresh subscriber id (used only when the row is new).
INSERT INTO notification_preferences (user_id, subscriber_id)
VALUES ($1, $2)
ON CONFLICT (user_id) DO NOTHING
