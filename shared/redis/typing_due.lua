-- Leases the rooms whose noted typing expiry has passed to the calling sweeper: each moves from the
-- due index to the lease set, so that no other sweeper takes it, until typing_done or the lease's
-- end. Rooms whose lease ended (their sweeper died) are due again first.
--
-- KEYS[1]  due     zset  room -> earliest expiry noted (ms)
-- KEYS[2]  leased  zset  room -> lease end (ms)
-- ARGV[1]  limit: rooms leased at most
-- ARGV[2]  lease (ms)
-- ARGV[3]  slack (ms): the keys live at least lease + slack from now
--
-- Returns {lease end, room...}.

local now = now_ms()
local limit = tonumber(ARGV[1])
local nowS = string.format('%d', now)
local leaseEnd = string.format('%d', now + tonumber(ARGV[2]))
local out = {leaseEnd}
if limit <= 0 then return out end

local keep = tonumber(ARGV[2]) + tonumber(ARGV[3])
for _, room in ipairs(redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', nowS, 'LIMIT', 0, limit)) do
  redis.call('ZADD', KEYS[1], 'LT', nowS, room)
  redis.call('ZREM', KEYS[2], room)
  extend(KEYS[1], keep)
end
local rooms = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', nowS, 'LIMIT', 0, limit)
for _, room in ipairs(rooms) do
  redis.call('ZREM', KEYS[1], room)
  redis.call('ZADD', KEYS[2], leaseEnd, room)
  out[#out + 1] = room
end
if #rooms > 0 then extend(KEYS[2], keep) end
return out
