-- Moves one dead letter back into its topic, at most once: whoever deletes it
-- from the dead-letter stream first appends it.
--
-- KEYS[1]  the topic's dead-letter stream
-- KEYS[2]  the topic's stream
-- ARGV[1]  the dead letter's id
-- ARGV[2]  the message JSON to append (DeadLetter::replay_message)
--
-- Returns 1 when replayed, 0 when it was not there (already replayed or purged).
if redis.call('XDEL', KEYS[1], ARGV[1]) == 0 then
  return 0
end
redis.call('XADD', KEYS[2], '*', 'm', ARGV[2])
return 1
