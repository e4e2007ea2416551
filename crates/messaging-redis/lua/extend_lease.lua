-- Resets the idle time of a delivery still being handled, so it is not
-- reclaimed, if the caller still owns it (fenced, see fence.lua). XCLAIM with
-- JUSTID keeps the owner and does not count a delivery.
--
-- KEYS[1]  the topic's stream
-- ARGV[1]  consumer group
-- ARGV[2]  consumer
-- ARGV[3]  entry id
-- ARGV[4]  delivery count
--
-- Returns 1 when extended, 0 when another consumer owns the entry now.
if not owns(KEYS[1], ARGV[1], ARGV[2], ARGV[3], ARGV[4]) then
  return 0
end
redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[3], 'JUSTID')
return 1
