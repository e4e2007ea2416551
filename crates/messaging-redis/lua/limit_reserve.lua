-- Takes the next ARGV[3] permits of a rate limit's bucket (the generic cell
-- rate algorithm) and answers how many microseconds until the first is due
-- (negative: due already).
-- KEYS[1]  the bucket: its theoretical arrival time, in µs of the server clock
-- ARGV[1]  emission interval, µs
-- ARGV[2]  burst tolerance, µs
-- ARGV[3]  permits taken
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0') or 0
if tat < now then
  tat = now
end
local due_in = tat - tolerance - now
local next_tat = tat + interval * tonumber(ARGV[3])
-- The state is worth keeping until every permit is back.
local ttl = math.floor((next_tat - now) / 1000) + 1
redis.call('SET', KEYS[1], string.format('%.0f', next_tat), 'PX', ttl)
return string.format('%.0f', due_in)
