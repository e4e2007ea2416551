-- The user of a subscriber id. $1 subscriber id.
SELECT user_id FROM notification_preferences WHERE subscriber_id = $1
