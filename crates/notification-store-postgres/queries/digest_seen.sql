-- The window an event already joined, with its count. $1 user, $2 key, $3 event id.
SELECT w.id, w.opened_by, w.opened_at, w.closed_at,
       (SELECT count(*) FROM notification_digest_events c WHERE c.window_id = w.id) AS count
FROM notification_digest_events e
JOIN notification_digest_windows w ON w.id = e.window_id
WHERE e.user_id = $1 AND e.digest_key = $2 AND e.event_id = $3
