-- Reads a page of a room's history together with its seq, epoch and oldest kept seq, as one
-- consistent snapshot. A room without history but with members gets one here (seq 0, new epoch,
-- same TTL as after an append) so that its members hold the epoch the first message will have;
-- presence_remove deletes it when the last member leaves. A room with neither gets nothing written:
-- reading any number of room names leaves no keys (the epoch returned is then a fresh one).
--
-- KEYS[1]  meta     hash  {seq, epoch}
-- KEYS[2]  history  zset  score = seq, member = "<seq>:<entry>"
-- KEYS[3]  conns    hash  the room's presence (connId -> JSON): exists while the room has members
-- ARGV[1]  epoch candidate, used only when the meta is created
-- ARGV[2]  historyTtlMs, the TTL given to a meta created here
-- ARGV[3]  after  ('' for none): entries with seq > after
-- ARGV[4]  before ('' for none): entries with seq < before
-- ARGV[5]  limit
--   after set: the first `limit` in range; otherwise the last `limit` in range.
--
-- Returns {seq, epoch, oldest, member...} with members oldest first; oldest is seq + 1 when the
-- history is empty.

local epoch = redis.call('HGET', KEYS[1], 'epoch')
local seq = 0
if not epoch then
  epoch = ARGV[1]
  if redis.call('EXISTS', KEYS[3]) == 0 then return {0, epoch, 1} end
  redis.call('HSET', KEYS[1], 'epoch', epoch, 'seq', 0)
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  redis.call('DEL', KEYS[2])
else
  seq = tonumber(redis.call('HGET', KEYS[1], 'seq')) or 0
end

local oldest = seq + 1
local first = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
if first[2] then oldest = tonumber(first[2]) end

local after, before, limit = ARGV[3], ARGV[4], tonumber(ARGV[5])
local members = {}
if limit > 0 then
  if after ~= '' then
    local max = '+inf'
    if before ~= '' then max = '(' .. before end
    members = redis.call('ZRANGEBYSCORE', KEYS[2], '(' .. after, max, 'LIMIT', 0, limit)
  else
    local max = '+inf'
    if before ~= '' then max = '(' .. before end
    local rev = redis.call('ZREVRANGEBYSCORE', KEYS[2], max, '-inf', 'LIMIT', 0, limit)
    for i = #rev, 1, -1 do members[#members + 1] = rev[i] end
  end
end

local out = {seq, epoch, oldest}
for i = 1, #members do out[#out + 1] = members[i] end
return out
