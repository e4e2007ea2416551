-- Lifts the suppression of (channel $1, address $2) and forgets its soft bounces.
-- Returns the suppression removed (none when there was none).
WITH forgotten AS (
    DELETE FROM suppression_soft_bounces WHERE channel = $1 AND address = $2
)
DELETE FROM suppressions
WHERE channel = $1 AND address = $2
RETURNING channel, address
