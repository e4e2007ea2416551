-- Figures of one topic, read in one step.
--
-- KEYS[1]  the topic's stream
-- KEYS[2]  the topic's delayed set
-- KEYS[3]  the topic's dead-letter stream
--
-- Returns a flat array: stream length, delayed count, dead letters, then for each
-- group: name, pending, lag (entries not yet delivered to it), consumers.
local out = { redis.call('XLEN', KEYS[1]), redis.call('ZCARD', KEYS[2]), redis.call('XLEN', KEYS[3]) }
if redis.call('EXISTS', KEYS[1]) == 0 then
  return out
end
-- Entries deleted from the middle (XDEL: a cancelled message) make Redis 7.0
-- overstate a group's lag for good (it counts them as unread); XTRIM does not.
local deleted = false
local stream = redis.call('XINFO', 'STREAM', KEYS[1])
for i = 1, #stream, 2 do
  if stream[i] == 'max-deleted-entry-id' then
    deleted = stream[i + 1] ~= '0-0'
  end
end
for _, group in ipairs(redis.call('XINFO', 'GROUPS', KEYS[1])) do
  local info = {}
  for i = 1, #group, 2 do
    info[group[i]] = group[i + 1]
  end
  local lag = info['lag']
  if not lag then
    -- Redis cannot tell after some deletions (or before 7.0): count them.
    lag = #redis.call('XRANGE', KEYS[1], '(' .. info['last-delivered-id'], '+')
  elseif deleted and lag > 0 then
    -- Counted when that is cheap (up to 10,000 unread entries); beyond, Redis's
    -- figure stands, too high by at most the entries cancelled.
    local unread = #redis.call('XRANGE', KEYS[1], '(' .. info['last-delivered-id'], '+',
      'COUNT', 10001)
    if unread <= 10000 then
      lag = unread
    end
  end
  out[#out + 1] = info['name']
  out[#out + 1] = info['pending']
  out[#out + 1] = lag
  out[#out + 1] = info['consumers']
end
return out
