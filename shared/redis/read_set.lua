-- Moves one user's read cursor in a room forward: unless it is already at or past `seq` in the same
-- epoch (a cursor of another epoch counts in a history that is gone: it is replaced). A move
-- refreshes the TTL of both keys and trims to the cap, least recently moved first.
--
-- KEYS[1]  read    hash  room → "<seq>|<epoch>"
-- KEYS[2]  readat  zset  room → time of the last move (ms, Redis's clock)
-- ARGV[1]  room
-- ARGV[2]  seq
-- ARGV[3]  epoch
-- ARGV[4]  most cursors kept
-- ARGV[5]  TTL ms of both keys
--
-- Returns {cursor seq after the call, 1 if it moved else 0}.

local seq = tonumber(ARGV[2])
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if cur then
  local bar = string.find(cur, '|', 1, true)
  local at = tonumber(string.sub(cur, 1, bar - 1))
  if string.sub(cur, bar + 1) == ARGV[3] and at >= seq then return {at, 0} end
elseif seq <= 0 then
  return {0, 0}
end
redis.call('HSET', KEYS[1], ARGV[1], string.format('%d', seq) .. '|' .. ARGV[3])
redis.call('ZADD', KEYS[2], now_ms(), ARGV[1])
cap_index(KEYS[1], KEYS[2], tonumber(ARGV[4]), ARGV[5])
return {seq, 1}
