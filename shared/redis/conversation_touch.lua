-- Records a conversation's newer message in one user's index: only a higher seq in the same epoch,
-- or another epoch, changes the entry (a late or repeated call may only learn the partner's name),
-- and the entry then gets the next `order` (max + 1), trims the index to the cap and refreshes
-- the TTL of both keys.
--
-- KEYS[1]  conv    hash  room → JSON {with = {id, name}, seq, epoch, last}
-- KEYS[2]  corder  zset  room → order (higher: more recent)
-- ARGV[1]  room
-- ARGV[2]  partner id
-- ARGV[3]  partner name
-- ARGV[4]  '1': the name is real; '0': a guess (a stored name is kept)
-- ARGV[5]  seq
-- ARGV[6]  epoch
-- ARGV[7]  last message (JSON text, stored as a string)
-- ARGV[8]  most entries kept
-- ARGV[9]  TTL ms of both keys
--
-- Returns 1 if the entry changed, else 0.

local seq = tonumber(ARGV[5])
local name = ARGV[3]
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if cur then
  local e = cjson.decode(cur)
  if e.epoch == ARGV[6] and tonumber(e.seq) >= seq then
    if ARGV[4] == '1' and e.with.name ~= name then
      e.with.name = name
      redis.call('HSET', KEYS[1], ARGV[1], cjson.encode(e))
    end
    return 0
  end
  if ARGV[4] ~= '1' then name = e.with.name end
end
local top = redis.call('ZREVRANGE', KEYS[2], 0, 0, 'WITHSCORES')
local order = 1
if top[2] then order = tonumber(top[2]) + 1 end
redis.call('HSET', KEYS[1], ARGV[1], cjson.encode({with = {id = ARGV[2], name = name}, seq = seq, epoch = ARGV[6], last = ARGV[7]}))
redis.call('ZADD', KEYS[2], order, ARGV[1])
cap_index(KEYS[1], KEYS[2], tonumber(ARGV[8]), ARGV[9])
return 1
