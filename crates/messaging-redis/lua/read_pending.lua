-- Reads the caller's own pending deliveries (what it took before a restart and
-- never settled) after a given entry id, counting one more delivery of each, and
-- returns each with its delivery count from the pending list.
--
-- KEYS[1]  the topic's stream
-- ARGV[1]  consumer group
-- ARGV[2]  consumer
-- ARGV[3]  read after this entry id ("0" for the start)
-- ARGV[4]  most entries to return
--
-- Returns a flat array: entry id, delivery count, fields, entry id, ...
-- Entries deleted from the stream meanwhile have nothing to deliver: they are
-- acknowledged and left out.
local reply = redis.call('XREADGROUP', 'GROUP', ARGV[1], ARGV[2], 'COUNT', ARGV[4], 'STREAMS', KEYS[1], ARGV[3])
local out = {}
if not reply or not reply[1] then
  return out
end
for _, entry in ipairs(reply[1][2]) do
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
