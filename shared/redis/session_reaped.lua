-- Deletes a session (normally one handed out by sweep_sessions whose presence is now removed).
-- Deleting a session that is gone already changes nothing.
--
-- KEYS[1]  session   hash
-- KEYS[2]  rooms     set
-- KEYS[3]  detached  zset  sid -> deadline or lease end
-- ARGV[1]  sid
-- ARGV[2]  key base "<p>{s}:" (for the node's set, a key of the same slot)
--
-- Returns 1.

local s = redis.call('HMGET', KEYS[1], 'state', 'node')
if s[1] == 'attached' then redis.call('SREM', ARGV[2] .. 'node:' .. s[2], ARGV[1]) end
redis.call('DEL', KEYS[1], KEYS[2])
redis.call('ZREM', KEYS[3], ARGV[1])
return 1
