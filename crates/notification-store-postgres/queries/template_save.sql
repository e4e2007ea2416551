-- Inserts a template, or replaces the one with the same name and locale keeping
-- its id and created_at. updated_at is the database's clock, never earlier than
-- the stored value.
-- $1 id, $2 name, $3 kind, $4 locale, $5 subject, $6 content, $7 variables,
-- $8 is_active, $9 metadata, $10 created_at
INSERT INTO message_templates AS t (id, name, kind, locale, subject, content, variables, is_active, metadata, created_at, updated_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, now())
ON CONFLICT (name, (COALESCE(locale, ''))) DO UPDATE
SET kind = EXCLUDED.kind,
    subject = EXCLUDED.subject,
    content = EXCLUDED.content,
    variables = EXCLUDED.variables,
    is_active = EXCLUDED.is_active,
    metadata = EXCLUDED.metadata,
    updated_at = GREATEST(now(), t.updated_at)
RETURNING id, name, kind, locale, subject, content, variables, is_active, metadata, created_at, updated_at
