-- Group commit: many begin_attempt compare-and-sets in one statement (each id at
-- most once). Only the rows that moved come back; for the others a later query
-- tells a lost race from an unknown id. $1 ids, $2 attempts seen, $3 at.
UPDATE notifications n
SET status = 'sending', attempts = n.attempts + 1, last_attempt_at = b.at
FROM UNNEST($1::uuid[], $2::integer[], $3::timestamptz[]) AS b(id, seen, at)
WHERE n.id = b.id AND n.attempts = b.seen AND n.status <> 'sent'
RETURNING n.id, n.user_id, n.kind, n.title, n.content, n.status, n.is_read, n.metadata::text AS metadata, n.error, n.idempotency_key, n.created_at, n.read_at, n.sent_at, n.attempts, n.last_attempt_at
