-- Cancels the delayed copies of one message (scheduled, or waiting for a
-- retry) found in one step of a scan of the topic's delayed set. ZREM in the
-- same script as the match, so a copy is removed here or moved by
-- promote.lua, never both and never neither.
--
-- KEYS[1]  the topic's delayed set (member: "<nonce>|<message JSON>", the
--          JSON starting with {"id":"<message id>", as this backend writes it)
-- ARGV[1]  the ZSCAN cursor ('0' to start)
-- ARGV[2]  the message id (hyphenated UUID)
-- ARGV[3]  the scan step's COUNT
--
-- Returns { the next cursor ('0' when the scan is complete), copies removed }.
local head = '|{"id":"' .. ARGV[2] .. '"'
local reply = redis.call('ZSCAN', KEYS[1], ARGV[1], 'MATCH', '*' .. head .. '*',
  'COUNT', tonumber(ARGV[3]))
local removed = 0
local found = reply[2]
for i = 1, #found, 2 do
  local member = found[i]
  local sep = string.find(member, '|', 1, true)
  -- The id must be the JSON's first field, right after the nonce: a payload
  -- quoting the id elsewhere does not match.
  if sep and string.sub(member, sep, sep + #head - 1) == head then
    removed = removed + redis.call('ZREM', KEYS[1], member)
  end
end
return { reply[1], removed }
