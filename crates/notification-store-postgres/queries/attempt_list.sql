-- One of the user's notifications with its attempts in order: one row per
-- attempt, or one row of NULL attempt columns when it has none; no row when the
-- notification is not the user's. $1 user_id, $2 notification_id.
SELECT n.id AS notification_id, n.user_id, a.number, a.kind, a.provider, a.outcome,
       a.error, a.started_at, a.duration_ms, a.provider_message_id,
       a.report_status, a.report_reason, a.report_at
FROM notifications n
LEFT JOIN notification_attempts a ON a.notification_id = n.id
WHERE n.user_id = $1 AND n.id = $2
ORDER BY a.number, a.id
