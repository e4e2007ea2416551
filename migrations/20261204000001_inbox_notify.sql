-- Inbox change notifications (issue 20): every new notification is announced
-- with pg_notify, so each `messaging serve` replica can push it to the user's
-- open event streams (Server-Sent Events) whichever process recorded it.
--
-- The channel is derived from the table's schema, so stores in separate schemas
-- (one per test, one per deployment) never hear each other:
-- `inbox_<schema>`, or `inbox_<md5 of the schema>` for a schema name too long
-- for a 63-byte channel name. `PostgresStore::inbox_listener` computes the
-- same name (queries/inbox_channel.sql).
--
-- The payload is small and fixed: {"user_id": ..., "id": ...}; listeners fetch
-- the row. A notification is sent when the inserting transaction commits, and
-- not at all when it rolls back.

CREATE FUNCTION notifications_inbox_notify() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify(
        CASE WHEN octet_length(TG_TABLE_SCHEMA) <= 57
             THEN 'inbox_' || TG_TABLE_SCHEMA
             ELSE 'inbox_' || md5(TG_TABLE_SCHEMA)
        END,
        json_build_object('user_id', NEW.user_id, 'id', NEW.id)::text
    );
    RETURN NULL;
END
$$;

CREATE TRIGGER notifications_inbox_notify
    AFTER INSERT ON notifications
    FOR EACH ROW EXECUTE FUNCTION notifications_inbox_notify();
