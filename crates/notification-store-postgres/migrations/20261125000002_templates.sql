-- Message templates: one row per name and locale; a NULL locale is the default
-- variant other locales fall back to.

CREATE TABLE message_templates (
    id         uuid        PRIMARY KEY,
    -- "C" collation: list() orders by byte value, as the in-memory store does.
    name       text        COLLATE "C" NOT NULL,
    kind       text        NOT NULL
        CONSTRAINT message_templates_kind_check CHECK (kind IN ('email', 'sms', 'push')),
    locale     text        COLLATE "C"
        CONSTRAINT message_templates_locale_check CHECK (locale <> ''),
    subject    text,
    content    text        NOT NULL,
    variables  text[]      NOT NULL DEFAULT '{}',
    is_active  boolean     NOT NULL DEFAULT true,
    metadata   jsonb       NOT NULL DEFAULT '{}'::jsonb,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- One template per (name, locale), the NULL locale included: a plain UNIQUE would
-- let several NULL-locale rows through.
CREATE UNIQUE INDEX message_templates_name_locale_idx
    ON message_templates (name, COALESCE(locale, ''));
