-- Appends messages to a topic's stream unless they would take the topic past its
-- cap (stream entries plus delayed messages): all of them or none.
--
-- KEYS[1]  the topic's stream
-- KEYS[2]  the topic's delayed set
-- ARGV[1]  the cap
-- ARGV[2…] the messages as JSON
--
-- Returns the new entry ids, or, when refused (nothing written), what the topic
-- holds as an integer.
local held = redis.call('XLEN', KEYS[1]) + redis.call('ZCARD', KEYS[2])
if held + #ARGV - 1 > tonumber(ARGV[1]) then
  return held
end
local ids = {}
for i = 2, #ARGV do
  ids[i - 1] = redis.call('XADD', KEYS[1], '*', 'm', ARGV[i])
end
return ids
