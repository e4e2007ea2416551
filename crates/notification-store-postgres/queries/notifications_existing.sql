-- Which of these ids are notifications (to tell lost races from unknown ids). $1 ids.
SELECT id FROM notifications WHERE id = ANY($1::uuid[])
