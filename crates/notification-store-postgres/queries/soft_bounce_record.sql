-- Records a soft bounce of (channel $1, address $2) at $3, forgets those before
-- the window start $4, and counts those within [$4, $3], the new one included.
WITH forgotten AS (
    DELETE FROM suppression_soft_bounces
    WHERE channel = $1 AND address = $2 AND bounced_at < $4
),
added AS (
    INSERT INTO suppression_soft_bounces (channel, address, bounced_at)
    VALUES ($1, $2, $3)
)
SELECT 1 + count(*) AS in_window
FROM suppression_soft_bounces
WHERE channel = $1 AND address = $2 AND bounced_at >= $4 AND bounced_at <= $3
