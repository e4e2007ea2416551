-- The open window of (user, key), locked until the end of the transaction.
-- $1 user, $2 key.
SELECT id, opened_by, opened_at, closed_at, 0::bigint AS count
FROM notification_digest_windows
WHERE user_id = $1 AND digest_key = $2 AND closed_at IS NULL
FOR UPDATE
