-- Takes (or renews) slots of a concurrency limit's bucket for the holders
-- ARGV[3..], in order, leased for ARGV[2] ms of the server clock: a holder
-- with a live slot renews it, another takes one of ARGV[1] slots while one is
-- free. Answers one integer per holder: 1 when it has its slot, 0 when every
-- slot is held by a live lease.
-- KEYS[1]  the bucket: a sorted set of holders scored by the end of their lease
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local max = tonumber(ARGV[1])
local lease = tonumber(ARGV[2])
local until_ms = now + lease
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local held = redis.call('ZCARD', KEYS[1])
local taken = {}
for i = 3, #ARGV do
  local holder = ARGV[i]
  if redis.call('ZSCORE', KEYS[1], holder) then
    redis.call('ZADD', KEYS[1], until_ms, holder)
    taken[#taken + 1] = 1
  elseif held < max then
    redis.call('ZADD', KEYS[1], until_ms, holder)
    held = held + 1
    taken[#taken + 1] = 1
  else
    taken[#taken + 1] = 0
  end
end
if held > 0 and redis.call('PTTL', KEYS[1]) < lease then
  redis.call('PEXPIRE', KEYS[1], lease)
end
return taken
