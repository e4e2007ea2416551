-- Acknowledges deliveries the caller still owns (fenced, see fence.lua).
--
-- KEYS[1]  the topic's stream
-- ARGV[1]  consumer group
-- ARGV[2+3i], ARGV[3+3i], ARGV[4+3i] (i = 0, 1, ...)
--          consumer, entry id and delivery count of each receipt
--
-- Returns one integer per receipt: 1 acknowledged, 0 another consumer owns it now.
local settled = {}
local acked = {}
for i = 2, #ARGV, 3 do
  if owns(KEYS[1], ARGV[1], ARGV[i], ARGV[i + 1], ARGV[i + 2]) then
    acked[#acked + 1] = ARGV[i + 1]
    settled[#settled + 1] = 1
  else
    settled[#settled + 1] = 0
  end
end
if #acked > 0 then
  redis.call('XACK', KEYS[1], ARGV[1], unpack(acked))
end
return settled
