-- Serialises the soft bounces of one (channel $1, address $2) until the end of
-- the transaction, so two at once both count each other.
SELECT pg_advisory_xact_lock(hashtext($1), hashtext($2))
