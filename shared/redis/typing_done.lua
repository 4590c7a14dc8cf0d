-- A sweeper is done with a room it leased (typing_due): releases the lease, unless another sweeper
-- holds it by now, and notes the room's next expiry in the due index if somebody is still typing.
-- It never removes a room from the due index: a typingSet may have noted it meanwhile.
--
-- KEYS[1]  due     zset  room -> earliest expiry noted (ms)
-- KEYS[2]  leased  zset  room -> lease end (ms)
-- ARGV[1]  room
-- ARGV[2]  the room's next expiry (ms), '' when nobody is typing
-- ARGV[3]  the lease end typing_due returned
-- ARGV[4]  slack (ms): the index lives this long past the next expiry
--
-- Returns 1.

local now = now_ms()

local held = redis.call('ZSCORE', KEYS[2], ARGV[1])
if held and tonumber(held) == tonumber(ARGV[3]) then redis.call('ZREM', KEYS[2], ARGV[1]) end
if ARGV[2] ~= '' then
  local at = tonumber(ARGV[2])
  redis.call('ZADD', KEYS[1], 'LT', string.format('%d', at), ARGV[1])
  extend(KEYS[1], math.max(at - now, 0) + tonumber(ARGV[4]))
end
return 1
