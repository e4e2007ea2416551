-- Acknowledges deliveries the caller still owns (fenced, see fence.lua).
--
-- KEYS[1]  the topic's stream
-- ARGV[1]  consumer group
-- then one block per consumer:
--          consumer, n (receipts in the block), lowest and highest entry id of
--          the block, then n pairs: entry id, delivery count
--
-- Returns one integer per receipt, in order: 1 acknowledged, 0 another
-- consumer owns the entry now.
--
-- One XPENDING per entry would dominate the cost of a batch, so each block reads
-- the consumer's pending entries between its lowest and highest id in one call;
-- receipts not found there (more entries in that range than fetched, or not the
-- consumer's any more) are checked one by one.
local group = ARGV[1]
local settled = {}
local acked = {}
local i = 2
while i <= #ARGV do
  local consumer, n = ARGV[i], tonumber(ARGV[i + 1])
  local seen = {}
  local pending = redis.pcall('XPENDING', KEYS[1], group, ARGV[i + 2], ARGV[i + 3], n + 16, consumer)
  if type(pending) == 'table' and not pending.err then
    for _, entry in ipairs(pending) do
      seen[entry[1]] = entry[4]
    end
  end
  i = i + 4
  for j = i, i + 2 * n - 1, 2 do
    local id, count = ARGV[j], tonumber(ARGV[j + 1])
    local delivered = seen[id]
    local mine
    if delivered then
      mine = delivered == count
    else
      mine = owns(KEYS[1], group, consumer, id, count)
    end
    if mine then
      acked[#acked + 1] = id
      settled[#settled + 1] = 1
    else
      settled[#settled + 1] = 0
    end
  end
  i = i + 2 * n
end
if #acked > 0 then
  redis.call('XACK', KEYS[1], group, unpack(acked))
end
return settled
