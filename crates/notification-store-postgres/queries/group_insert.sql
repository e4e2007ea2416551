-- Group commit: the `record`s of many senders in one statement. A row whose id or
-- idempotency key is taken (by a stored row or an earlier row of the same array)
-- is skipped, not an error: only the ids inserted come back, the rest are
-- conflicts. Arrays as in notification_insert_batch.sql.
INSERT INTO notifications (id, user_id, kind, title, content, status, is_read, metadata, error, idempotency_key, created_at, read_at, sent_at, attempts, last_attempt_at)
SELECT * FROM UNNEST(
    $1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
    $7::boolean[], $8::jsonb[], $9::text[], $10::text[], $11::timestamptz[],
    $12::timestamptz[], $13::timestamptz[], $14::integer[], $15::timestamptz[]
)
ON CONFLICT DO NOTHING
RETURNING id
