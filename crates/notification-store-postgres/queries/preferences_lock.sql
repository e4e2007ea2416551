-- A user's preferences, locked until the end of the transaction. $1 user id.
SELECT preferences::text AS preferences, updated_at
FROM notification_preferences
WHERE user_id = $1
FOR UPDATE
