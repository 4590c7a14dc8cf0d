-- Creates a session attached to a connection on a gateway. An existing session with the same id is
-- replaced, its rooms forgotten (ids are random 128-bit, so this only happens by mistake).
--
-- KEYS[1]  session   hash  uid, name, node, conn, state = attached
-- KEYS[2]  rooms     set   the session's rooms
-- KEYS[3]  detached  zset  sid -> deadline or lease end
-- KEYS[4]  nodes     zset  node -> last sign of life (ms)
-- KEYS[5]  node set  set   sids attached on ARGV[4]
-- ARGV[1]  sid
-- ARGV[2]  user id
-- ARGV[3]  user name
-- ARGV[4]  node
-- ARGV[5]  conn
-- ARGV[6]  session TTL (ms): safety net, see the Sessions port (shared/sessions.ts)
-- ARGV[7]  key base "<p>{s}:" (for the previous node's set, a key of the same slot)
--
-- Returns 1.

local now = now_ms()
local ttl = tonumber(ARGV[6])

local old = redis.call('HMGET', KEYS[1], 'node', 'state')
if old[1] and old[2] == 'attached' and old[1] ~= ARGV[4] then
  redis.call('SREM', ARGV[7] .. 'node:' .. old[1], ARGV[1])
end
redis.call('DEL', KEYS[1], KEYS[2])
redis.call('ZREM', KEYS[3], ARGV[1])
redis.call('HSET', KEYS[1], 'uid', ARGV[2], 'name', ARGV[3], 'node', ARGV[4], 'conn', ARGV[5], 'state', 'attached')
redis.call('PEXPIRE', KEYS[1], ttl)

-- A node first seen here counts as alive from now on, so its sessions are swept if it never calls
-- nodeAlive. The node set's TTL is set when it is created only: nodeAlive renews it together with
-- its members' (see node_alive.lua), which keeps every member's TTL at least the set's.
redis.call('ZADD', KEYS[4], 'NX', string.format('%d', now), ARGV[4])
extend(KEYS[4], ttl)
redis.call('SADD', KEYS[5], ARGV[1])
if redis.call('PTTL', KEYS[5]) == -1 then redis.call('PEXPIRE', KEYS[5], ttl) end
return 1
