-- Deletes every notification created before $1.
DELETE FROM notifications WHERE created_at < $1
