-- The user's subscriber id, created on first use. The no-op update makes
-- RETURNING give the existing row's id on conflict, also under concurrency.
-- $1 user id, $2 a fresh subscriber id (used only when the row is new).
INSERT INTO notification_preferences (user_id, subscriber_id)
VALUES ($1, $2)
ON CONFLICT (user_id) DO UPDATE SET user_id = EXCLUDED.user_id
RETURNING subscriber_id
