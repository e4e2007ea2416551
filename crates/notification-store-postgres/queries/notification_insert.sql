-- Records one notification.
-- $1 id, $2 user_id, $3 kind, $4 title, $5 content, $6 status, $7 is_read,
-- $8 metadata, $9 error, $10 idempotency_key, $11 created_at, $12 read_at, $13 sent_at,
-- $14 attempts, $15 last_attempt_at
INSERT INTO notifications (id, user_id, kind, title, content, status, is_read, metadata, error, idempotency_key, created_at, read_at, sent_at, attempts, last_attempt_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)
