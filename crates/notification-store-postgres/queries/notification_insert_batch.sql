-- Records many notifications in one statement (all or none): one array per column,
-- the same length each, row i made of element i of every array.
INSERT INTO notifications (id, user_id, kind, title, content, status, is_read, metadata, error, idempotency_key, created_at, read_at, sent_at, attempts, last_attempt_at)
SELECT * FROM UNNEST(
    $1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
    $7::boolean[], $8::jsonb[], $9::text[], $10::text[], $11::timestamptz[],
    $12::timestamptz[], $13::timestamptz[], $14::integer[], $15::timestamptz[]
)
