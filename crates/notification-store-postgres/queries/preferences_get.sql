-- A user's preferences; no row: the defaults. $1 user id.
SELECT preferences::text AS preferences, updated_at
FROM notification_preferences
WHERE user_id = $1
