-- Reads the due index of a key prefix: the topics with a delayed message that
-- may be due now, and when the next one falls due. One key, so it runs on the
-- index's own slot.
--
-- KEYS[1]  the due index (member: topic name; score: at most the earliest due
--          time in Unix milliseconds of the topic's delayed set)
-- ARGV[1]  most topics to return
--
-- Returns { server time in ms, the earliest score after it or -1 when none,
-- { topics with score <= server time, earliest first } }.
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[1]))
local after = redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. now, '+inf', 'WITHSCORES', 'LIMIT', 0, 1)
local next_due = -1
if after[2] then
  next_due = tonumber(after[2])
end
return { now, next_due, due }
