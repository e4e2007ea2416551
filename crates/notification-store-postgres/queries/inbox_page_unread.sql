-- A page of the user's unread notifications, newest first, keyset-paginated on (created_at, id).
-- $1 user_id, $2 kind or NULL, $3 since or NULL, $4 cursor created_at or NULL,
-- $5 cursor id or NULL, $6 rows to fetch (the page size plus one, to know whether
-- another page follows).
--
-- Absent bounds become infinities rather than "$n IS NULL OR ...", so the range
-- conditions stay index conditions on notifications_unread_idx, even in the
-- generic plan of the prepared statement. The kind stays a plain filter: its
-- "$2 IS NULL OR" folds away in a custom plan, whereas "kind = COALESCE($2, kind)"
-- makes the planner underestimate the rows and sort a bitmap scan instead of
-- reading the index in order.
SELECT id, user_id, kind, title, content, status, is_read, metadata::text AS metadata, error, idempotency_key, created_at, read_at, sent_at, attempts, last_attempt_at
FROM notifications
WHERE user_id = $1 AND NOT is_read
  AND created_at >= COALESCE($3, '-infinity'::timestamptz)
  AND (created_at, id) < (COALESCE($4, 'infinity'::timestamptz),
                          COALESCE($5, 'ffffffff-ffff-ffff-ffff-ffffffffffff'::uuid))
  AND ($2::text IS NULL OR kind = $2)
ORDER BY created_at DESC, id DESC
LIMIT $6
