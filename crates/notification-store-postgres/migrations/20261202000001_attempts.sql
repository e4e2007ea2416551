-- How far each send got, and every attempt to hand a notification to its provider.
--
-- A send moves a row pending -> sending (written before the provider is called)
-- -> sent | failed; a later delivery of the same event that finds it `sending`
-- knows the outcome of that attempt is unknown and applies the channel's policy
-- (send again, or mark it `unknown`). `attempts` counts the attempts begun: the
-- compare-and-set of begin_attempt is on it.

ALTER TABLE notifications
    ADD COLUMN attempts        integer     NOT NULL DEFAULT 0
        CONSTRAINT notifications_attempts_check CHECK (attempts >= 0),
    ADD COLUMN last_attempt_at timestamptz;

ALTER TABLE notifications DROP CONSTRAINT notifications_status_check;
ALTER TABLE notifications ADD CONSTRAINT notifications_status_check
    CHECK (status IN ('pending', 'sending', 'sent', 'failed', 'unknown'));

-- The attempt log: append-only, one row per attempt (an interrupted attempt is
-- logged `unknown` by the delivery that finds it, and may later be logged again
-- with its real outcome by a process that was only slow).
CREATE TABLE notification_attempts (
    id              bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    notification_id uuid        NOT NULL REFERENCES notifications (id) ON DELETE CASCADE,
    number          integer     NOT NULL CONSTRAINT notification_attempts_number_check CHECK (number >= 0),
    kind            text        NOT NULL
        CONSTRAINT notification_attempts_kind_check CHECK (kind IN ('email', 'sms', 'push', 'system')),
    provider        text        NOT NULL,
    outcome         text        NOT NULL
        CONSTRAINT notification_attempts_outcome_check CHECK (outcome IN ('sent', 'failed', 'unknown')),
    error           text,
    started_at      timestamptz NOT NULL,
    duration_ms     bigint      CONSTRAINT notification_attempts_duration_check CHECK (duration_ms >= 0)
);

-- list_attempts and the cascade on delete: a notification's attempts in order.
CREATE INDEX notification_attempts_notification_idx
    ON notification_attempts (notification_id, number, id);
