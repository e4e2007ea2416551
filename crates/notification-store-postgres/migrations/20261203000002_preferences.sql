-- Per-user notification preferences (issue 18), and the two statuses they add
-- (beside those of 20261203000001: suppressed, delivered, bounced, complained).
--
-- `skipped`: not sent because the user's preferences opted out of it (the row's
-- `error` says why); `scheduled`: held back by the user's quiet hours, sent at
-- `metadata.scheduled_for` by a durable delayed message.

ALTER TABLE notifications DROP CONSTRAINT notifications_status_check;
ALTER TABLE notifications ADD CONSTRAINT notifications_status_check
    CHECK (status IN ('pending', 'sending', 'sent', 'failed', 'unknown',
                      'suppressed', 'delivered', 'bounced', 'complained',
                      'skipped', 'scheduled'));

-- One row per user who has preferences (a user without a row has the defaults:
-- everything on, no quiet hours). `preferences` is the JSON form of
-- `notification_store::Preferences` without its user id; it is only ever read
-- and written whole, under the row lock of an update.
CREATE TABLE notification_preferences (
    -- "C": compared by bytes (only ever for equality), never through the locale.
    user_id       text        COLLATE "C" PRIMARY KEY,
    -- The opaque id one-click unsubscribe tokens carry instead of the user id.
    subscriber_id uuid        NOT NULL
        CONSTRAINT notification_preferences_subscriber_id_key UNIQUE,
    preferences   jsonb       NOT NULL DEFAULT '{}'::jsonb,
    -- NULL until preferences are first changed (a row may exist only for its
    -- subscriber id).
    updated_at    timestamptz
);

-- Digest windows: the events of one (user, digest key) collected until one
-- digest is sent for them. A window opens with its first event (`opened_by`)
-- and is closed once (`closed_at`); at most one is open per (user, key).
CREATE TABLE notification_digest_windows (
    id          uuid        PRIMARY KEY,
    user_id     text        COLLATE "C" NOT NULL,
    digest_key  text        COLLATE "C" NOT NULL,
    opened_by   text        COLLATE "C" NOT NULL,
    opened_at   timestamptz NOT NULL,
    closed_at   timestamptz
);

CREATE UNIQUE INDEX notification_digest_windows_open_idx
    ON notification_digest_windows (user_id, digest_key)
    WHERE closed_at IS NULL;

-- Each event once per (user, key), in the window it joined, in append order.
CREATE TABLE notification_digest_events (
    seq         bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    window_id   uuid        NOT NULL REFERENCES notification_digest_windows (id) ON DELETE CASCADE,
    user_id     text        COLLATE "C" NOT NULL,
    digest_key  text        COLLATE "C" NOT NULL,
    event_id    text        COLLATE "C" NOT NULL,
    event       jsonb       NOT NULL,
    CONSTRAINT notification_digest_events_event_key UNIQUE (user_id, digest_key, event_id)
);

CREATE INDEX notification_digest_events_window_idx
    ON notification_digest_events (window_id, seq);
