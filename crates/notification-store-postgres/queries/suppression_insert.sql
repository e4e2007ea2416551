-- Suppresses (channel $1, address $2) with reason $3, detail $4, at $5, unless
-- it is suppressed already. Returns the row inserted (none when one existed).
INSERT INTO suppressions (channel, address, reason, detail, created_at)
VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (channel, address) DO NOTHING
RETURNING channel, address, reason, detail, created_at
