-- Notes in the due index that a room has a typing entry expiring at (or after) a time, keeping the
-- earliest time noted. A time earlier than the room's real next expiry costs one sweep that finds
-- nothing; a later one would delay a `typing` event, so callers never note one.
--
-- KEYS[1]  due  zset  room -> earliest expiry noted (ms)
-- ARGV[1]  room
-- ARGV[2]  the time (ms), or '' for ARGV[3] from now
-- ARGV[3]  ms from now, when ARGV[2] is ''
-- ARGV[4]  slack (ms): the index lives this long past the time noted
--
-- Returns 1.

local now = now_ms()

local at
if ARGV[2] ~= '' then at = tonumber(ARGV[2]) else at = now + tonumber(ARGV[3]) end
redis.call('ZADD', KEYS[1], 'LT', string.format('%d', at), ARGV[1])
extend(KEYS[1], math.max(at - now, 0) + tonumber(ARGV[4]))
return 1
