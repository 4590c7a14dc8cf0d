-- One user's conversations, most recent first, with the user's read cursor in each.
--
-- KEYS[1]  conv    hash  room → JSON {with, seq, epoch, last}
-- KEYS[2]  corder  zset  room → order
-- KEYS[3]  read    hash  room → "<seq>|<epoch>"
-- ARGV[1]  limit
-- ARGV[2]  before: only orders below it ('' : no bound)
--
-- Returns {room, entry JSON, order, cursor ('' : none), ...}.

local max = '+inf'
if ARGV[2] ~= '' then max = '(' .. ARGV[2] end
local rooms = redis.call('ZREVRANGEBYSCORE', KEYS[2], max, '-inf', 'WITHSCORES', 'LIMIT', 0, tonumber(ARGV[1]))
local out = {}
for i = 1, #rooms, 2 do
  local entry = redis.call('HGET', KEYS[1], rooms[i])
  if entry then
    out[#out + 1] = rooms[i]
    out[#out + 1] = entry
    out[#out + 1] = rooms[i + 1]
    out[#out + 1] = redis.call('HGET', KEYS[3], rooms[i]) or ''
  end
end
return out
