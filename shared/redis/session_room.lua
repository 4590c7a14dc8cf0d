-- Adds a room to a session's rooms, or removes one. A session that does not exist (never created,
-- reaped, expired by its TTL) gets no rooms set: nothing would ever delete it but its TTL.
--
-- KEYS[1]  session  hash
-- KEYS[2]  rooms    set
-- ARGV[1]  '1' to add, '0' to remove
-- ARGV[2]  room
-- ARGV[3]  session TTL (ms), renewed on the session's keys by an add
--
-- Returns 1 when the session exists, else 0.

if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if ARGV[1] == '1' then
  redis.call('SADD', KEYS[2], ARGV[2])
  extend(KEYS[1], tonumber(ARGV[3]))
  extend(KEYS[2], tonumber(ARGV[3]))
else
  redis.call('SREM', KEYS[2], ARGV[2])
end
return 1
