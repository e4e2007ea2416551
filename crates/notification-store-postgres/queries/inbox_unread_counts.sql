-- The unread count of each user $1 names (0 for one with none), in the order
-- given, for the event streams of `messaging serve`: one statement for the
-- users of a batch of announced notifications.
SELECT u.user_id, (SELECT count(*) FROM notifications n WHERE n.user_id = u.user_id AND NOT n.is_read) AS unread
FROM unnest($1::text[]) WITH ORDINALITY AS u(user_id, position)
ORDER BY u.position
