-- Keeps a unique key held for a while more, or frees it, if message ARGV[1]
-- holds it.
--
-- KEYS[1]  the unique key's lock
-- ARGV[1]  the message id
-- ARGV[2]  how long more (ms); 0 frees it now
--
-- Returns 1 when the message held the key, 0 otherwise.
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return 0
end
if tonumber(ARGV[2]) <= 0 then
  redis.call('DEL', KEYS[1])
else
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 1
