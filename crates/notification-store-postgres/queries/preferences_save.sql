-- Stores a user's preferences (row locked by preferences_lock.sql); updated_at
-- never goes back. $1 user id, $2 preferences (JSON text).
UPDATE notification_preferences
SET preferences = $2::jsonb,
    updated_at = GREATEST(clock_timestamp(), COALESCE(updated_at, '-infinity'::timestamptz))
WHERE user_id = $1
RETURNING updated_at
