-- Records a gateway's sign of life. About every TTL/2 it also renews the TTL of the sessions
-- attached to it, so that a session lives as long as its gateway does, however long that is,
-- at the cost of one pass over the node's sessions twice a TTL.
--
-- KEYS[1]  nodes     zset  node -> last sign of life (ms)
-- KEYS[2]  node set  set   sids attached on ARGV[1]; its TTL is renewed only here, together with
--                          its members', so every member lives at least as long as the set
-- ARGV[1]  node
-- ARGV[2]  session TTL (ms)
-- ARGV[3]  key base "<p>{s}:" (for the members' keys, of the same slot)
--
-- Returns 1.

local now = now_ms()
local ttl = tonumber(ARGV[2])

redis.call('ZADD', KEYS[1], string.format('%d', now), ARGV[1])
extend(KEYS[1], ttl)
local left = redis.call('PTTL', KEYS[2])
if left == -1 or (left >= 0 and left < ttl / 2) then
  for _, sid in ipairs(redis.call('SMEMBERS', KEYS[2])) do
    extend(ARGV[3] .. 'sess:' .. sid, ttl)
    extend(ARGV[3] .. 'rooms:' .. sid, ttl)
  end
  redis.call('PEXPIRE', KEYS[2], ttl)
end
return 1
