-- Whether a notification exists (to tell a lost compare-and-set from an unknown id). $1 id.
SELECT EXISTS (SELECT 1 FROM notifications WHERE id = $1)
