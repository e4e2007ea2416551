-- Every template, by name then locale, the default (NULL) first. Both columns use
-- the "C" collation, so the order is by byte value.
SELECT id, name, kind, locale, subject, content, variables, is_active, metadata, created_at, updated_at
FROM message_templates
ORDER BY name, locale NULLS FIRST
