-- A window's events in append order. $1 window.
SELECT event::text FROM notification_digest_events WHERE window_id = $1 ORDER BY seq
