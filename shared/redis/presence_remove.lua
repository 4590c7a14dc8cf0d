-- Removes a connection from a room's presence; `last` is exact under concurrency because the
-- count is decremented in the same step. Emptied hashes disappear (Redis deletes empty keys).
-- When the last connection leaves a room that has no message, the room's meta (its epoch, created
-- by history.lua for the members) goes too: an empty room without history holds no keys.
--
-- KEYS[1]  conns   hash  connId -> JSON {user, node}
-- KEYS[2]  counts  hash  userId -> number of the user's connections in the room
-- KEYS[3]  names   hash  userId -> name
-- KEYS[4]  meta    hash  {seq, epoch} of the room's history
-- ARGV[1]  connId
--
-- Returns nil when the connection is not present (nothing changes), else {JSON {user, node}, last (0|1)}.

local v = redis.call('HGET', KEYS[1], ARGV[1])
if not v then return false end
redis.call('HDEL', KEYS[1], ARGV[1])
local uid = cjson.decode(v).user.id
local last = 0
if redis.call('HINCRBY', KEYS[2], uid, -1) <= 0 then
  redis.call('HDEL', KEYS[2], uid)
  redis.call('HDEL', KEYS[3], uid)
  last = 1
end
if redis.call('EXISTS', KEYS[1]) == 0 and redis.call('HGET', KEYS[4], 'seq') == '0' then
  redis.call('DEL', KEYS[4])
end
return {v, last}
