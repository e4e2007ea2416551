-- Notifications just recorded, each with its user's unread count, for the
-- event streams of `messaging serve`: one statement for a batch of them.
-- $1 the ids (those deleted meanwhile are not returned).
SELECT n.id, n.user_id, n.kind, n.title, n.content, n.status, n.is_read, n.metadata::text AS metadata,
       n.error, n.idempotency_key, n.created_at, n.read_at, n.sent_at, n.attempts, n.last_attempt_at,
       (SELECT count(*) FROM notifications u WHERE u.user_id = n.user_id AND NOT u.is_read) AS unread
FROM notifications n
WHERE n.id = ANY($1::uuid[])
