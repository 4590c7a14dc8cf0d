-- Adds a connection to a room's presence. Counting connections per user here, in the same step as
-- the add, is what makes `firstForUser` exact when a user's connections join at the same time.
--
-- KEYS[1]  conns   hash  connId -> JSON {user, node}
-- KEYS[2]  counts  hash  userId -> number of the user's connections in the room
-- KEYS[3]  names   hash  userId -> name (exactly the users with a count)
-- ARGV[1]  connId
-- ARGV[2]  JSON {user, node}
-- ARGV[3]  userId
-- ARGV[4]  user name
-- ARGV[5]  TTL (ms) of the three keys, refreshed on every add that changes something
--
-- Returns {first (0|1), userId, name, userId, name, ...}: the room's users after the add.
-- Adding a connection already present changes nothing and returns first = 0.

local first = 0
if redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2]) == 1 then
  if redis.call('HINCRBY', KEYS[2], ARGV[3], 1) == 1 then first = 1 end
  redis.call('HSET', KEYS[3], ARGV[3], ARGV[4])
  redis.call('PEXPIRE', KEYS[1], ARGV[5])
  redis.call('PEXPIRE', KEYS[2], ARGV[5])
  redis.call('PEXPIRE', KEYS[3], ARGV[5])
end
local out = redis.call('HGETALL', KEYS[3])
table.insert(out, 1, first)
return out
