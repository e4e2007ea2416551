-- Takes over pending entries of a group idle for at least a given time (their
-- consumer is presumed dead), counting one more delivery of each, and returns
-- each with its delivery count from the pending list.
--
-- KEYS[1]  the topic's stream
-- ARGV[1]  consumer group
-- ARGV[2]  the consumer taking them over
-- ARGV[3]  minimum idle time, milliseconds
-- ARGV[4]  XAUTOCLAIM cursor to start from ("0-0" for the start)
-- ARGV[5]  most entries to take
--
-- Returns a flat array: next cursor, then entry id, delivery count, fields, ...
-- Entries deleted from the stream meanwhile are dropped from the pending list
-- (by XAUTOCLAIM itself on Redis 7, here on 6.2) and left out.
local reply = redis.call('XAUTOCLAIM', KEYS[1], ARGV[1], ARGV[2], ARGV[3], ARGV[4], 'COUNT', ARGV[5])
local out = { reply[1] }
for _, entry in ipairs(reply[2]) do
  local id, fields = entry[1], entry[2]
  if fields then
    local pending = redis.call('XPENDING', KEYS[1], ARGV[1], id, id, 1)
    out[#out + 1] = id
    out[#out + 1] = pending[1][4]
    out[#out + 1] = fields
  else
    redis.call('XACK', KEYS[1], ARGV[1], id)
  end
end
return out
