-- Takes the next ARGV[3] permits of a rate limit's bucket (the generic cell
-- rate algorithm) and, when ARGV[4] > 0, up to ARGV[4] more taken ahead, only
-- as many as leave at least half of the burst free (so every one is due
-- already). Answers {how many microseconds until the first of the ARGV[3] is
-- due (negative: due already), how many were taken ahead}, as strings.
-- KEYS[1]  the bucket: its theoretical arrival time, in µs of the server clock
-- ARGV[1]  emission interval, µs
-- ARGV[2]  burst tolerance, µs
-- ARGV[3]  permits taken
-- ARGV[4]  most permits taken ahead
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local count = tonumber(ARGV[3])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0') or 0
if tat < now then
  tat = now
end
local due_in = tat - tolerance - now
local ahead = 0
local wanted = tonumber(ARGV[4] or '0') or 0
if wanted > 0 then
  ahead = math.floor((now + tolerance / 2 - tat) / interval) - count
  if ahead > wanted then
    ahead = wanted
  end
  if ahead < 0 then
    ahead = 0
  end
end
local next_tat = tat + interval * (count + ahead)
-- The state is worth keeping until every permit is back.
local ttl = math.floor((next_tat - now) / 1000) + 1
redis.call('SET', KEYS[1], string.format('%.0f', next_tat), 'PX', ttl)
return {string.format('%.0f', due_in), string.format('%.0f', ahead)}
