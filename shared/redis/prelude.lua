-- The prelude: prepended to every other script of this folder when it is loaded
-- (shared/redis-connection.ts), so these helpers exist in each one. Scripts do not redefine them.
-- It declares locals only and writes nothing: a script's KEYS/ARGV header below it stays the
-- whole story of what that script touches.

-- Redis's clock in ms: every deadline is measured on it, so the callers' clocks do not matter.
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- Gives `key` at least `ms` to live: an expiry only ever moves later (a key without one gets one).
local function extend(key, ms)
  local left = redis.call('PTTL', key)
  if left == -1 or (left >= 0 and left < ms) then redis.call('PEXPIRE', key, ms) end
end

-- An index kept as a hash (member -> value) and a sorted set (member by order) of at most `max`
-- members: the lowest-scored ones past it are dropped from both; both live `ttl_ms` from now.
local function cap_index(hash, zset, max, ttl_ms)
  local over = redis.call('ZCARD', zset) - max
  if over > 0 then
    local old = redis.call('ZRANGE', zset, 0, over - 1)
    redis.call('HDEL', hash, unpack(old))
    redis.call('ZREMRANGEBYRANK', zset, 0, over - 1)
  end
  redis.call('PEXPIRE', hash, ttl_ms)
  redis.call('PEXPIRE', zset, ttl_ms)
end
