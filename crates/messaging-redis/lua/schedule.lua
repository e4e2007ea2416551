-- Adds a delayed message unless the topic holds its cap (stream entries plus
-- delayed messages).
--
-- KEYS[1]  the topic's stream
-- KEYS[2]  the topic's delayed set
-- ARGV[1]  the cap
-- ARGV[2]  the due time (score)
-- ARGV[3]  the member
--
-- Returns OK when added, or what the topic holds (an integer) when refused.
local held = redis.call('XLEN', KEYS[1]) + redis.call('ZCARD', KEYS[2])
if held + 1 > tonumber(ARGV[1]) then
  return held
end
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[3])
return redis.status_reply('OK')
