-- Publishes a message under a unique key unless the key is held: the claim and
-- the publish (XADD, or ZADD to the delayed set) are one step.
--
-- KEYS[1]  the topic's stream
-- KEYS[2]  the topic's delayed set
-- KEYS[3]  the unique key's lock ({P:T}:unique:<key>, value: the holder's id)
-- ARGV[1]  the topic's cap
-- ARGV[2]  the message id
-- ARGV[3]  how long the key is held at most (ms)
-- ARGV[4]  'now' or 'at'
-- ARGV[5]  the message JSON ('now'), or the delayed member ('at')
-- ARGV[6]  the due score ('at')
--
-- Returns {'published'}, {'duplicate', holder id}, or what the topic holds (an
-- integer) when the cap refuses it (nothing written, nothing claimed).
local holder = redis.call('GET', KEYS[3])
if holder then
  return {'duplicate', holder}
end
local held = redis.call('XLEN', KEYS[1]) + redis.call('ZCARD', KEYS[2])
if held + 1 > tonumber(ARGV[1]) then
  return held
end
if ARGV[4] == 'at' then
  redis.call('ZADD', KEYS[2], ARGV[6], ARGV[5])
else
  redis.call('XADD', KEYS[1], '*', 'm', ARGV[5])
end
redis.call('SET', KEYS[3], ARGV[2], 'PX', ARGV[3])
return {'published'}
