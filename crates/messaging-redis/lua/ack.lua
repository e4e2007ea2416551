-- Acknowledges deliveries the caller still owns (fenced, see fence.lua).
--
-- KEYS[1]  the topic's stream
-- ARGV[1]  consumer group
-- ARGV[2+3i], ARGV[3+3i], ARGV[4+3i] (i = 0, 1, ...)
--          consumer, entry id and delivery count of each receipt
--
-- Returns one integer per receipt: 1 acknowledged, 0 another consumer owns it now.
--
-- One XPENDING per entry would dominate the cost of a batch, so the head of each
-- consumer's pending list (what it is handling now, usually all of it) is read
-- in one call; receipts not found there are checked one by one.
local group = ARGV[1]

local receipts = {}
for i = 2, #ARGV, 3 do
  receipts[ARGV[i]] = (receipts[ARGV[i]] or 0) + 1
end

-- consumer -> entry id -> delivery count, for what the pending lists showed.
local seen = {}
for consumer, count in pairs(receipts) do
  local entries = {}
  local pending = redis.pcall('XPENDING', KEYS[1], group, '-', '+', count * 2 + 64, consumer)
  if type(pending) == 'table' and not pending.err then
    for _, entry in ipairs(pending) do
      entries[entry[1]] = entry[4]
    end
  end
  seen[consumer] = entries
end

local settled = {}
local acked = {}
for i = 2, #ARGV, 3 do
  local consumer, id, count = ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 2])
  local delivered = seen[consumer][id]
  local mine
  if delivered then
    mine = delivered == count
  else
    -- Not owned by `consumer`, or beyond the head read above.
    mine = owns(KEYS[1], group, consumer, id, count)
  end
  if mine then
    acked[#acked + 1] = id
    settled[#settled + 1] = 1
  else
    settled[#settled + 1] = 0
  end
end
if #acked > 0 then
  redis.call('XACK', KEYS[1], group, unpack(acked))
end
return settled
