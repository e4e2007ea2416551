-- Every suppression, or channel $1's, by channel then address (bytes).
SELECT channel, address, reason, detail, created_at
FROM suppressions
WHERE $1::text IS NULL OR channel = $1
ORDER BY channel COLLATE "C", address
