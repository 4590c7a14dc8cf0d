-- Stores one notification for one user, all or nothing: an id the user already has changes nothing
-- (not its content, not its read state, not the expiry); otherwise it is added unread, the oldest
-- are dropped past the cap (from all three keys, so the unread count stays exact) and the three keys
-- get a fresh TTL. notificationsAdd sends one call of this script per (user, notification), many in
-- a pipeline: the keys of different users are in different slots.
--
-- KEYS[1]  items   hash  id -> JSON of the notification without `read`
-- KEYS[2]  order   zset  id -> ts (ms); ties in ts are ordered by id, as zsets do
-- KEYS[3]  unread  set   the ids not read yet (a subset of the items)
-- ARGV[1]  id
-- ARGV[2]  JSON of the notification without `read`
-- ARGV[3]  ts (ms)
-- ARGV[4]  notificationsMax    notifications kept
-- ARGV[5]  notificationsTtlMs  TTL of the three keys, refreshed when a notification is stored
--
-- Returns the user's unread count after the call.

-- The three keys expire together. If the items are gone but another key is left (evicted on its
-- own), the leftover belongs to nothing: an old unread id must not be counted again.
if redis.call('EXISTS', KEYS[1]) == 0 then redis.call('DEL', KEYS[2], KEYS[3]) end

if redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2]) == 0 then
  return redis.call('SCARD', KEYS[3])
end
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1])
redis.call('SADD', KEYS[3], ARGV[1])

local over = redis.call('ZCARD', KEYS[2]) - tonumber(ARGV[4])
if over > 0 then
  -- The oldest (lowest ts); possibly the one just added, when it is older than all the others.
  local dropped = redis.call('ZRANGE', KEYS[2], 0, over - 1)
  redis.call('ZREMRANGEBYRANK', KEYS[2], 0, over - 1)
  for _, id in ipairs(dropped) do
    redis.call('HDEL', KEYS[1], id)
    redis.call('SREM', KEYS[3], id)
  end
end

redis.call('PEXPIRE', KEYS[1], ARGV[5])
redis.call('PEXPIRE', KEYS[2], ARGV[5])
redis.call('PEXPIRE', KEYS[3], ARGV[5])
return redis.call('SCARD', KEYS[3])
