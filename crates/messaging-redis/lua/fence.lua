-- Shared prelude, prepended to ack.lua, retry.lua, dead_letter.lua and extend_lease.lua.
--
-- owns(stream, group, consumer, id, count) is true when `consumer` holds entry `id`
-- of `group` with exactly `count` deliveries: nobody reclaimed it since the
-- delivery the caller's receipt describes. A missing stream or group (the topic
-- was deleted) means nobody owns it.
local function owns(stream, group, consumer, id, count)
  local pending = redis.pcall('XPENDING', stream, group, id, id, 1)
  if type(pending) ~= 'table' or pending.err or #pending == 0 then
    return false
  end
  local entry = pending[1]
  return entry[2] == consumer and tonumber(entry[4]) == tonumber(count)
end
