-- Acknowledges a delivery and appends it to the dead-letter queue, in one step,
-- if the caller still owns the delivery (fenced, see fence.lua).
--
-- KEYS[1]  the topic's stream
-- KEYS[2]  the topic's dead-letter stream
-- ARGV[1]  consumer group
-- ARGV[2]  consumer
-- ARGV[3]  entry id
-- ARGV[4]  delivery count
-- ARGV[5]  message JSON, as last attempted
-- ARGV[6]  last error
-- ARGV[7]  attempts made
--
-- The dead letter's id is its entry id in the dead-letter stream, whose time part
-- says when it was dead-lettered.
-- Returns 1 when done, 0 when another consumer owns the entry now (nothing changed).
if not owns(KEYS[1], ARGV[1], ARGV[2], ARGV[3], ARGV[4]) then
  return 0
end
redis.call('XACK', KEYS[1], ARGV[1], ARGV[3])
redis.call('XADD', KEYS[2], '*', 'm', ARGV[5], 'g', ARGV[1], 'e', ARGV[6], 'a', ARGV[7], 'src', ARGV[3])
return 1
