-- The unread counts of several users in one call. One Redis only (users are in several slots of a
-- Cluster).
--
-- KEYS     per user: its unread set (see notifications-redis.ts)
--
-- Returns, per user in order, the size of its unread set.

local out = {}
for i = 1, #KEYS do
  out[i] = redis.call('SCARD', KEYS[i])
end
return out
