-- Marks a user's notifications read: the given ids, or all of them. Reads never refresh the TTL
-- (notifications expire after the last one stored) and never create a key.
--
-- KEYS[1]  unread  set  the ids not read yet
-- ARGV[1]  '1': all of them; '0': the ids in ARGV[2..]
-- ARGV[2..] ids (unknown and already read ones are ignored; an id given twice counts once)
--
-- Returns {unread count after the call, changed id, ...}: the ids that were unread before the
-- call, in the order given (with all: in no particular order).

local changed
if ARGV[1] == '1' then
  changed = redis.call('SMEMBERS', KEYS[1])
  redis.call('DEL', KEYS[1])
else
  changed = {}
  for i = 2, #ARGV do
    if redis.call('SREM', KEYS[1], ARGV[i]) == 1 then changed[#changed + 1] = ARGV[i] end
  end
end

local out = {redis.call('SCARD', KEYS[1])}
for i = 1, #changed do out[i + 1] = changed[i] end
return out
