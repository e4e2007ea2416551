-- Takes (or renews) one of ARGV[1] slots of a concurrency limit's bucket for
-- ARGV[2], leased for ARGV[3] ms of the server clock; 1 when taken, 0 when
-- every slot is held by a live lease.
-- KEYS[1]  the bucket: a sorted set of holders scored by the end of their lease
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local max = tonumber(ARGV[1])
local lease = tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if not redis.call('ZSCORE', KEYS[1], ARGV[2]) and redis.call('ZCARD', KEYS[1]) >= max then
  return 0
end
redis.call('ZADD', KEYS[1], now + lease, ARGV[2])
if redis.call('PTTL', KEYS[1]) < lease then
  redis.call('PEXPIRE', KEYS[1], lease)
end
return 1
