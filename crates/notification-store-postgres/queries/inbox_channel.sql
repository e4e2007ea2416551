-- The channel notifications_inbox_notify() (migration 20261204000001) announces
-- new notifications on, for the store's schema. $1 the configured schema, or
-- NULL for the connection's current schema.
SELECT CASE WHEN octet_length(s) <= 57 THEN 'inbox_' || s ELSE 'inbox_' || md5(s) END
FROM (SELECT coalesce($1::text, current_schema()) AS s) AS schema_name
