-- Appends one message to a room's history, all or nothing: checks the dedupe record, creates the
-- history (new epoch) when it is missing, assigns the next seq, stores `head .. seq .. tail`,
-- trims to the cap, refreshes the TTLs and records the dedupe key.
--
-- KEYS[1]  meta     hash   {seq = latest seq, epoch}
-- KEYS[2]  history  zset   score = seq, member = "<seq>:<entry>" (the prefix keeps members unique
--                          even when two entries have the same text)
-- KEYS[3]  dedupe   string "<seq>|<epoch>|<ts>"   (optional: only when the publish has a dedupe key)
-- ARGV[1]  head
-- ARGV[2]  tail
-- ARGV[3]  ts (returned as is; stored in the dedupe record)
-- ARGV[4]  historyMax    entries kept
-- ARGV[5]  historyTtlMs  TTL of meta and history, refreshed here
-- ARGV[6]  dedupeTtlMs   TTL of the dedupe record
-- ARGV[7]  epoch candidate, used only when the meta is created
--
-- Returns {seq, epoch, ts, duplicate (0|1)}; a duplicate returns the first append's seq, epoch and
-- ts and writes nothing.

if #KEYS >= 3 then
  local seen = redis.call('GET', KEYS[3])
  if seen then
    local a = string.find(seen, '|', 1, true)
    local b = string.find(seen, '|', a + 1, true)
    return {tonumber(string.sub(seen, 1, a - 1)), string.sub(seen, a + 1, b - 1), string.sub(seen, b + 1), 1}
  end
end

local epoch = redis.call('HGET', KEYS[1], 'epoch')
if not epoch then
  epoch = ARGV[7]
  redis.call('HSET', KEYS[1], 'epoch', epoch, 'seq', 0)
  -- Entries of a history whose meta is gone (evicted on its own) belong to no epoch now.
  redis.call('DEL', KEYS[2])
end
local seq = redis.call('HINCRBY', KEYS[1], 'seq', 1)
local s = string.format('%d', seq)
redis.call('ZADD', KEYS[2], seq, s .. ':' .. ARGV[1] .. s .. ARGV[2])
redis.call('ZREMRANGEBYRANK', KEYS[2], 0, -(tonumber(ARGV[4]) + 1))
redis.call('PEXPIRE', KEYS[1], ARGV[5])
redis.call('PEXPIRE', KEYS[2], ARGV[5])
if #KEYS >= 3 then
  redis.call('SET', KEYS[3], s .. '|' .. epoch .. '|' .. ARGV[3], 'PX', ARGV[6])
end
return {seq, epoch, ARGV[3], 0}
