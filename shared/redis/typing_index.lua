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

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)

local at
if ARGV[2] ~= '' then at = tonumber(ARGV[2]) else at = now + tonumber(ARGV[3]) end
redis.call('ZADD', KEYS[1], 'LT', string.format('%d', at), ARGV[1])
local keep = math.max(at - now, 0) + tonumber(ARGV[4])
local left = redis.call('PTTL', KEYS[1])
if left == -1 or (left >= 0 and left < keep) then redis.call('PEXPIRE', KEYS[1], keep) end
return 1
