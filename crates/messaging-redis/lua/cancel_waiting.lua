-- Cancels the copies of one message waiting in the topic's stream, unread by
-- every consumer group, found in one step of a scan: only entries after the
-- latest last-delivered id of all groups are looked at (every group has read
-- what lies before), and each match is deleted (XDEL) in the same script as
-- that check, so no group reads it meanwhile.
--
-- KEYS[1]  the topic's stream
-- ARGV[1]  where the scan is: the last entry id looked at ('0-0' to start)
-- ARGV[2]  the message id (hyphenated UUID)
-- ARGV[3]  most entries to look at in this step
--
-- An entry matches when its `m` field is a message with that id: the full
-- form (starting with {"id":"<id>") or the minimal form (a JSON object whose
-- `id` is it). Flat entries carry no id of their own and are skipped.
--
-- Returns { the last entry id looked at, or '' when the scan is complete,
-- copies removed }.
if redis.call('EXISTS', KEYS[1]) == 0 then
  return { '', 0 }
end
local function parse(id)
  local dash = string.find(id, '-', 1, true)
  return tonumber(string.sub(id, 1, dash - 1)), tonumber(string.sub(id, dash + 1))
end
local function older(a, b)
  local am, as = parse(a)
  local bm, bs = parse(b)
  return am < bm or (am == bm and as < bs)
end
local start = ARGV[1]
for _, group in ipairs(redis.call('XINFO', 'GROUPS', KEYS[1])) do
  for i = 1, #group, 2 do
    if group[i] == 'last-delivered-id' and older(start, group[i + 1]) then
      start = group[i + 1]
    end
  end
end
local count = tonumber(ARGV[3])
local entries = redis.call('XRANGE', KEYS[1], '(' .. start, '+', 'COUNT', count)
local full = '{"id":"' .. ARGV[2] .. '"'
local removed = 0
for _, entry in ipairs(entries) do
  local fields = entry[2]
  for i = 1, #fields, 2 do
    if fields[i] == 'm' then
      local json = fields[i + 1]
      local match = string.sub(json, 1, #full) == full
      if not match and string.find(json, ARGV[2], 1, true) then
        local ok, value = pcall(cjson.decode, json)
        match = ok and type(value) == 'table' and value['id'] == ARGV[2]
      end
      if match then
        removed = removed + redis.call('XDEL', KEYS[1], entry[1])
      end
      break
    end
  end
end
if #entries < count then
  return { '', removed }
end
return { entries[#entries][1], removed }
