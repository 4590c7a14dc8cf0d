-- Re-attaches a session to a new connection, if it is the same user's and has not expired.
--
-- KEYS[1]  session   hash  uid, name, node, conn, state (attached|detached|expired), due
-- KEYS[2]  rooms     set   the session's rooms
-- KEYS[3]  detached  zset  sid -> deadline (detached) or lease end (expired)
-- KEYS[4]  nodes     zset  node -> last sign of life (ms)
-- KEYS[5]  node set  set   sids attached on ARGV[4]
-- ARGV[1]  sid
-- ARGV[2]  user id (must be the session's)
-- ARGV[3]  user name (stored: the latest name wins)
-- ARGV[4]  node
-- ARGV[5]  conn
-- ARGV[6]  session TTL (ms)
-- ARGV[7]  key base "<p>{s}:" (for the previous node's set, a key of the same slot)
--
-- Returns nil, changing nothing, when the session does not exist, is another user's, is expired
-- (handed to a sweeper) or detached with its deadline passed (about to be: the sweeper's presence
-- removal must never hit a session that came back). Otherwise returns the session's rooms.

local now = now_ms()
local ttl = tonumber(ARGV[6])

local s = redis.call('HMGET', KEYS[1], 'uid', 'node', 'state', 'due')
if not s[1] or s[1] ~= ARGV[2] then return false end
if s[3] == 'expired' then return false end
if s[3] == 'detached' and tonumber(s[4]) <= now then return false end

if s[3] == 'attached' then
  if s[2] ~= ARGV[4] then redis.call('SREM', ARGV[7] .. 'node:' .. s[2], ARGV[1]) end
else
  redis.call('ZREM', KEYS[3], ARGV[1])
end
redis.call('HSET', KEYS[1], 'name', ARGV[3], 'node', ARGV[4], 'conn', ARGV[5], 'state', 'attached')
redis.call('HDEL', KEYS[1], 'due')
extend(KEYS[1], ttl)
extend(KEYS[2], ttl)

redis.call('ZADD', KEYS[4], 'NX', string.format('%d', now), ARGV[4])
extend(KEYS[4], ttl)
redis.call('SADD', KEYS[5], ARGV[1])
if redis.call('PTTL', KEYS[5]) == -1 then redis.call('PEXPIRE', KEYS[5], ttl) end
return redis.call('SMEMBERS', KEYS[2])
