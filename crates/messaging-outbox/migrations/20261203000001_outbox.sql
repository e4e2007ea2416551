-- The transactional outbox: one row per message written by `Outbox::publish*`
-- inside the application's own transaction, moved to the messaging backend by a
-- relay. Applied by `messaging_outbox::migrate` into the outbox's schema, with
-- its own migrations table `_outbox_migrations` (so it can share a schema with
-- the notification store's `_sqlx_migrations`).
CREATE TABLE outbox_messages (
    -- Insertion order; within one ordering key also commit order, since
    -- writers of one key are serialized by a transaction-scoped advisory lock.
    seq             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- The message id, assigned at write time and kept by every publish of the
    -- row (consumers deduplicate on it).
    id              uuid        NOT NULL UNIQUE,
    topic           text        NOT NULL,
    -- Rows of one key are published in order; NULL: no order promised.
    ordering_key    text,
    -- What relays lock: the key, or the row's own id when it has none.
    lock_key        text        NOT NULL GENERATED ALWAYS AS (coalesce(ordering_key, id::text)) STORED,
    payload         jsonb       NOT NULL,
    metadata        jsonb       NOT NULL DEFAULT '{}',
    max_retry       integer     NOT NULL,
    -- Delayed messages: handed to the backend's delay queue for this time.
    deliver_at      timestamptz,
    created_at      timestamptz NOT NULL,
    -- pending -> published, or failed (a row the backend can never take; kept for an operator).
    state           text        NOT NULL DEFAULT 'pending'
                    CHECK (state IN ('pending', 'published', 'failed')),
    -- Publishes begun, counted (and committed) before each one: a row published
    -- more than once has attempts > 1.
    attempts        integer     NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    last_attempt_at timestamptz,
    published_at    timestamptz,
    error           text
);

-- The relays' scan: oldest pending rows first.
CREATE INDEX outbox_messages_pending_idx ON outbox_messages (seq) WHERE state = 'pending';
-- The rows of the keys a relay holds, in order.
CREATE INDEX outbox_messages_pending_key_idx ON outbox_messages (lock_key, seq) WHERE state = 'pending';
-- Retention: published rows by age.
CREATE INDEX outbox_messages_published_idx ON outbox_messages (published_at) WHERE state = 'published';
