-- Publishes one tick of a schedule, exactly once: the schedule's mark (the last
-- tick published or skipped, in ms) moves to this tick and the message is
-- appended, in one step; a mark at or past the tick publishes nothing.
--
-- KEYS[1]  the topic's stream
-- KEYS[2]  the topic's delayed set (for the cap)
-- KEYS[3]  the schedule's mark
-- ARGV[1]  the topic's cap
-- ARGV[2]  the tick, ms since the epoch
-- ARGV[3]  the message as JSON
--
-- Returns 1 when published, 0 when the tick was taken already, or {held} when
-- the cap refuses it (nothing written, the mark unmoved).
local mark = redis.call('GET', KEYS[3])
if mark and tonumber(mark) >= tonumber(ARGV[2]) then
  return 0
end
local held = redis.call('XLEN', KEYS[1]) + redis.call('ZCARD', KEYS[2])
if held + 1 > tonumber(ARGV[1]) then
  return {held}
end
redis.call('XADD', KEYS[1], '*', 'm', ARGV[3])
redis.call('SET', KEYS[3], ARGV[2])
return 1
