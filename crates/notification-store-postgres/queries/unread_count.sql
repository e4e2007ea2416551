-- How many of the user's notifications are unread (an index-only scan of
-- notifications_unread_idx). $1 user_id.
SELECT count(*) FROM notifications WHERE user_id = $1 AND NOT is_read
