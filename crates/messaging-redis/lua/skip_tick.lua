-- Moves a schedule's mark to a tick without publishing (missed ticks skipped),
-- unless it is there or later already.
--
-- KEYS[1]  the schedule's mark
-- ARGV[1]  the tick, ms since the epoch
--
-- Returns 1 when the mark moved, 0 otherwise.
local mark = redis.call('GET', KEYS[1])
if mark and tonumber(mark) >= tonumber(ARGV[1]) then
  return 0
end
redis.call('SET', KEYS[1], ARGV[1])
return 1
