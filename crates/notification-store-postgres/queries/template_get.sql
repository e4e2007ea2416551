-- The template with this name and locale ($2 NULL: the default variant).
-- $1 name, $2 locale. Matches message_templates_name_locale_idx.
SELECT id, name, kind, locale, subject, content, variables, is_active, metadata, created_at, updated_at
FROM message_templates
WHERE name = $1 AND COALESCE(locale, '') = COALESCE($2, '')
