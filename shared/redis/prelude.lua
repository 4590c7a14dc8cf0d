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
