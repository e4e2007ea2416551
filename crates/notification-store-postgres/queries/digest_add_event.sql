-- Adds an event to a window (nothing when the event is in one already).
-- $1 window, $2 user, $3 key, $4 event id, $5 event (JSON text).
INSERT INTO notification_digest_events (window_id, user_id, digest_key, event_id, event)
VALUES ($1, $2, $3, $4, $5::jsonb)
ON CONFLICT (user_id, digest_key, event_id) DO NOTHING
