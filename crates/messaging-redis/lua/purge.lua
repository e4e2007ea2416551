-- Removes every dead letter of a topic.
--
-- KEYS[1]  the topic's dead-letter stream
--
-- Returns how many there were.
local count = redis.call('XLEN', KEYS[1])
redis.call('DEL', KEYS[1])
return count
