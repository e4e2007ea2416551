-- Moves delayed messages whose time has come (by the server's clock) into the
-- topic's stream. One script, so concurrent promoters never move a message twice
-- and a crash between the two steps cannot lose or duplicate one.
--
-- KEYS[1]  the topic's delayed set (score: due time in Unix milliseconds;
--          member: "<nonce>|<message JSON>")
-- KEYS[2]  the topic's stream
-- KEYS[3]  the topic's dead-letter stream
-- ARGV[1]  most messages to move in this call
--
-- A member without the "<nonce>|" separator (written by something other than
-- this backend) is moved aside to the dead-letter stream with a reason, so it
-- cannot stop the messages behind it.
--
-- Returns { moved, next due time in ms or -1 when none is left, server time in ms }.
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[1]))
for _, member in ipairs(due) do
  local sep = string.find(member, '|', 1, true)
  if sep then
    redis.call('XADD', KEYS[2], '*', 'm', string.sub(member, sep + 1))
  else
    redis.call('XADD', KEYS[3], '*', 'm', member, 'g', '', 'a', '0', 'src', 'delayed',
      'e', 'malformed member of the delayed set: no "<nonce>|" separator')
  end
end
-- The members read are the set's lowest ranks (score order), so one command
-- removes exactly them instead of one ZREM each.
if #due > 0 then
  redis.call('ZREMRANGEBYRANK', KEYS[1], 0, #due - 1)
end
local next_due = -1
local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
if first[2] then
  next_due = tonumber(first[2])
end
return { #due, next_due, now }
