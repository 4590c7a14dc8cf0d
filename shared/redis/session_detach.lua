-- The connection of a session closed: the session is detached with a deadline, unless it is attached
-- to another connection by now (it was resumed elsewhere and this is the old connection closing).
--
-- KEYS[1]  session   hash  uid, name, node, conn, state, due
-- KEYS[2]  rooms     set
-- KEYS[3]  detached  zset  sid -> deadline or lease end
-- ARGV[1]  sid
-- ARGV[2]  conn that closed
-- ARGV[3]  grace (ms): deadline = now + grace
-- ARGV[4]  session TTL (ms); the keys live at least grace + TTL from now
-- ARGV[5]  key base "<p>{s}:" (for the node's set, a key of the same slot)
--
-- Returns 1 when detached, 0 when nothing changed.

local now = now_ms()

local s = redis.call('HMGET', KEYS[1], 'state', 'conn', 'node')
if s[1] ~= 'attached' or s[2] ~= ARGV[2] then return 0 end
local grace = tonumber(ARGV[3])
local deadline = string.format('%d', now + grace)
redis.call('SREM', ARGV[5] .. 'node:' .. s[3], ARGV[1])
redis.call('HSET', KEYS[1], 'state', 'detached', 'due', deadline)
redis.call('ZADD', KEYS[3], deadline, ARGV[1])
local keep = grace + tonumber(ARGV[4])
extend(KEYS[1], keep)
extend(KEYS[2], keep)
extend(KEYS[3], keep)
return 1
