-- Changes who is typing in a room, dropping expired entries first, all in one step: `changed` says
-- whether the set changed by this call, expired entries included, so that each change is reported
-- by exactly one caller (this one, or the sweep's call of this script).
--
-- KEYS[1]  typing  zset  userId -> expiry (ms)
-- KEYS[2]  names   hash  userId -> name (exactly the users of KEYS[1])
-- ARGV[1]  '1': user ARGV[2] is typing (added, or its expiry renewed); '0': is not (removed);
--          '': no change, only drop the expired entries (the sweep)
-- ARGV[2]  user id
-- ARGV[3]  user name
-- ARGV[4]  ttl (ms): the entry expires ttl from now
-- ARGV[5]  slack (ms): the keys live this long past the latest expiry
--
-- Returns {changed (0|1), next expiry or '' when nobody is typing, userId, name, ...}.

local now = now_ms()

local changed = 0
local expired = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', string.format('%d', now))
if #expired > 0 then
  changed = 1
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', string.format('%d', now))
  for _, uid in ipairs(expired) do redis.call('HDEL', KEYS[2], uid) end
end

if ARGV[1] == '1' then
  local ttl = tonumber(ARGV[4])
  if redis.call('ZADD', KEYS[1], string.format('%d', now + ttl), ARGV[2]) == 1 then changed = 1 end
  redis.call('HSET', KEYS[2], ARGV[2], ARGV[3])
  extend(KEYS[1], ttl + tonumber(ARGV[5]))
  extend(KEYS[2], ttl + tonumber(ARGV[5]))
elseif ARGV[1] == '0' then
  if redis.call('ZREM', KEYS[1], ARGV[2]) == 1 then changed = 1 end
  redis.call('HDEL', KEYS[2], ARGV[2])
end

local out = {changed, ''}
local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
if first[2] then out[2] = first[2] end
local flat = redis.call('HGETALL', KEYS[2])
for i = 1, #flat do out[#out + 1] = flat[i] end
return out
