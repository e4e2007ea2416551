-- Deletes one of the user's notifications. $1 user_id, $2 id.
DELETE FROM notifications WHERE user_id = $1 AND id = $2
