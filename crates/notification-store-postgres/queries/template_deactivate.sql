-- Marks a template inactive. $1 name, $2 locale (NULL: the default variant).
UPDATE message_templates
SET is_active = false, updated_at = GREATEST(now(), updated_at)
WHERE name = $1 AND COALESCE(locale, '') = COALESCE($2, '')
