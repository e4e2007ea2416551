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
local asking = #ARGV - 2
local taken = {}
local held = redis.call('ZCARD', KEYS[1])
if held + asking > max then
  -- Not room for every holder as if all were new: drop the lapsed leases and
  -- look at each holder.
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
  held = redis.call('ZCARD', KEYS[1])
end
if held + asking <= max then
  -- Room for all of them even if none has a slot yet: one ZADD takes or
  -- renews every slot (lapsed leases left are dropped by a later call), in
  -- chunks that stay within Lua's stack.
  local args = {}
  for i = 3, #ARGV do
    args[#args + 1] = until_ms
    args[#args + 1] = ARGV[i]
    taken[#taken + 1] = 1
    if #args >= 1000 or i == #ARGV then
      held = held + redis.call('ZADD', KEYS[1], unpack(args))
      args = {}
    end
  end
else
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
end
if held > 0 and redis.call('PTTL', KEYS[1]) < lease then
  redis.call('PEXPIRE', KEYS[1], lease)
end
return taken
