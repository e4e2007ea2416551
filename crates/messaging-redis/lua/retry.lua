-- Acknowledges a delivery and schedules its updated copy, in one step, if the
-- caller still owns the delivery (fenced, see fence.lua).
--
-- KEYS[1]  the topic's stream
-- KEYS[2]  the topic's delayed set (score: due time in Unix milliseconds)
-- ARGV[1]  consumer group
-- ARGV[2]  consumer
-- ARGV[3]  entry id
-- ARGV[4]  delivery count
-- ARGV[5]  due time, Unix milliseconds
-- ARGV[6]  delayed-set member: "<nonce>|<message JSON>"
--
-- Returns 1 when done, 0 when another consumer owns the entry now (nothing changed).
if not owns(KEYS[1], ARGV[1], ARGV[2], ARGV[3], ARGV[4]) then
  return 0
end
redis.call('XACK', KEYS[1], ARGV[1], ARGV[3])
redis.call('ZADD', KEYS[2], ARGV[5], ARGV[6])
return 1
