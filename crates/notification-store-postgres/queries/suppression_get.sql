-- The suppression of (channel $1, address $2), if any.
SELECT channel, address, reason, detail, created_at
FROM suppressions
WHERE channel = $1 AND address = $2
