-- The notification history: one row per notification sent (or attempted) to one user.
-- Every statement is unqualified, so the table lands in the first schema of the
-- connection's search_path (the store's `with_schema`, or `public`).

CREATE TABLE notifications (
    id              uuid        PRIMARY KEY,
    -- "C": compared by bytes (only ever for equality), never through the locale.
    user_id         text        COLLATE "C" NOT NULL,
    kind            text        NOT NULL
        CONSTRAINT notifications_kind_check CHECK (kind IN ('email', 'sms', 'push', 'system')),
    title           text        NOT NULL,
    content         text        NOT NULL,
    status          text        NOT NULL DEFAULT 'pending'
        CONSTRAINT notifications_status_check CHECK (status IN ('pending', 'sent', 'failed')),
    is_read         boolean     NOT NULL DEFAULT false,
    metadata        jsonb       NOT NULL DEFAULT '{}'::jsonb,
    error           text,
    idempotency_key text        COLLATE "C",
    created_at      timestamptz NOT NULL DEFAULT now(),
    read_at         timestamptz,
    sent_at         timestamptz
);

-- The inbox: a user's notifications newest first, with (created_at, id) as the
-- keyset cursor. Serves list_for_user (every filter) and its ORDER BY ... LIMIT.
CREATE INDEX notifications_inbox_idx
    ON notifications (user_id, created_at DESC, id DESC);

-- Only the unread rows: unread_count is an index-only scan, the unread-only inbox
-- and mark_all_read touch nothing else. Rows leave the index once read.
CREATE INDEX notifications_unread_idx
    ON notifications (user_id, created_at DESC, id DESC)
    WHERE NOT is_read;

-- An idempotency key is unique per user.
CREATE UNIQUE INDEX notifications_idempotency_key_idx
    ON notifications (user_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;

-- purge_older_than: rows arrive in created_at order, so a BRIN index is tiny and
-- cheap to maintain on insert.
CREATE INDEX notifications_created_at_brin
    ON notifications USING brin (created_at);
