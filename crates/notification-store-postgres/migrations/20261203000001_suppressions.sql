-- Delivery outcomes reported by providers, and the suppression list.
--
-- A send that a provider accepts logs its provider message id with the attempt;
-- a delivery callback naming that id later updates the notification's status
-- (delivered, bounced, complained, failed) and the attempt's report. A hard
-- bounce, a complaint, or enough soft bounces in a window put the address on the
-- suppression list of its channel: later sends to it are recorded `suppressed`
-- and not handed to any provider.

ALTER TABLE notifications DROP CONSTRAINT notifications_status_check;
ALTER TABLE notifications ADD CONSTRAINT notifications_status_check
    CHECK (status IN ('pending', 'sending', 'sent', 'failed', 'unknown',
                      'suppressed', 'delivered', 'bounced', 'complained'));

ALTER TABLE notification_attempts
    ADD COLUMN provider_message_id text COLLATE "C",
    ADD COLUMN report_status       text
        CONSTRAINT notification_attempts_report_status_check
        CHECK (report_status IN ('delivered', 'bounced', 'complained', 'failed')),
    ADD COLUMN report_reason       text,
    ADD COLUMN report_at           timestamptz;

-- Delivery callbacks find the attempt (and so the notification) by the id the
-- provider gave when it accepted the message.
CREATE INDEX notification_attempts_provider_message_id_idx
    ON notification_attempts (provider_message_id)
    WHERE provider_message_id IS NOT NULL;

-- One row per suppressed (channel, address); addresses are stored normalised
-- (emails lowercased), compared by bytes.
CREATE TABLE suppressions (
    channel    text        NOT NULL
        CONSTRAINT suppressions_channel_check CHECK (channel IN ('email', 'sms', 'push')),
    address    text        COLLATE "C" NOT NULL,
    reason     text        NOT NULL
        CONSTRAINT suppressions_reason_check
        CHECK (reason IN ('hard_bounce', 'complaint', 'soft_bounces', 'manual')),
    detail     text,
    created_at timestamptz NOT NULL,
    PRIMARY KEY (channel, address)
);

-- Soft bounces not yet enough to suppress: counted in a sliding window.
CREATE TABLE suppression_soft_bounces (
    id         bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    channel    text        NOT NULL
        CONSTRAINT suppression_soft_bounces_channel_check CHECK (channel IN ('email', 'sms', 'push')),
    address    text        COLLATE "C" NOT NULL,
    bounced_at timestamptz NOT NULL
);

CREATE INDEX suppression_soft_bounces_address_idx
    ON suppression_soft_bounces (channel, address, bounced_at);
