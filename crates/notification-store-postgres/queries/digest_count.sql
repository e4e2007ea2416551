-- How many events a window holds. $1 window.
SELECT count(*) FROM notification_digest_events WHERE window_id = $1
