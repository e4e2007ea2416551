-- Trims a topic's stream to about ARGV[1] entries. Mode 'settled' (lossless)
-- never drops an entry a group still needs: nothing newer than a group's last
-- delivered entry (not yet read) and nothing from a group's oldest pending entry
-- on (not yet settled); with no group at all nothing is removed. Mode 'unread'
-- (lossy, Retention::DropUnreadAfter) drops unread entries too, but still none
-- from a group's oldest pending entry on.
-- Redis 7 has no XTRIM mode for that (8.2 adds ACKED), so the bound is computed
-- here from XINFO GROUPS and XPENDING, and applied with XTRIM MINID.
--
-- KEYS[1]  the topic's stream
-- ARGV[1]  entries to keep
-- ARGV[2]  most entries to remove in this call (bounds the script's run time)
-- ARGV[3]  'settled' or 'unread'
--
-- Returns how many entries were removed.
local keep = tonumber(ARGV[1])
local length = redis.call('XLEN', KEYS[1])
if length <= keep then
  return 0
end
local excess = math.min(length - keep, tonumber(ARGV[2]))

local function parse(id)
  local dash = string.find(id, '-', 1, true)
  return tonumber(string.sub(id, 1, dash - 1)), tonumber(string.sub(id, dash + 1))
end
local function older(a, b)
  local am, as = parse(a)
  local bm, bs = parse(b)
  return am < bm or (am == bm and as < bs)
end

-- The first entry to keep if only the length counted.
local groups = redis.call('XINFO', 'GROUPS', KEYS[1])
local unread_too = ARGV[3] == 'unread'
if #groups == 0 and not unread_too then
  return 0
end
local head = redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', excess + 1)
local bound = head[#head][1]
if #head <= excess then
  -- Everything may go (keep is 0): the bound is just past the last entry.
  local ms, seq = parse(bound)
  bound = ms .. '-' .. (seq + 1)
end
for _, group in ipairs(groups) do
  local info = {}
  for i = 1, #group, 2 do
    info[group[i]] = group[i + 1]
  end
  -- Entries after the last delivered one are unread: keep them (and it).
  if not unread_too and older(info['last-delivered-id'], bound) then
    bound = info['last-delivered-id']
  end
  if info['pending'] > 0 then
    local oldest = redis.call('XPENDING', KEYS[1], info['name'])[2]
    if older(oldest, bound) then
      bound = oldest
    end
  end
end
return redis.call('XTRIM', KEYS[1], 'MINID', bound)
