-- One sweep of the sessions, all or nothing:
-- 0. after a gap in sweeping longer than the node timeout, every known gateway counts as alive now;
-- 1. each gateway silent for longer than the node timeout is dead: its attached sessions (at most
--    ARGV[7] of them per call; the rest on the next call) are detached as of its last sign of life
--    (deadline = last + grace); once its set is empty the node is forgotten;
-- 2. up to ARGV[4] sessions whose deadline or lease end has passed are leased to the caller: state
--    expired (sessionResume refuses it from now on), due = now + lease, so that another sweep hands
--    it out again only if the caller does not reap it in time.
--
-- KEYS[1]  nodes     zset  node -> last sign of life (ms)
-- KEYS[2]  detached  zset  sid -> deadline (detached) or lease end (expired)
-- ARGV[1]  node timeout (ms)
-- ARGV[2]  grace (ms)
-- ARGV[3]  lease (ms)
-- ARGV[4]  limit: sessions handed out at most
-- ARGV[5]  session TTL (ms)
-- ARGV[6]  key base "<p>{s}:": sessions, rooms and node sets are keys of the same slot, built here
-- ARGV[7]  dead nodes' sessions detached at most per call
--
-- Returns {{sid, uid, name, room...}...}: the sessions leased to the caller.

local now = now_ms()
local grace, lease, limit = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local ttl, base, budget = tonumber(ARGV[5]), ARGV[6], tonumber(ARGV[7])

-- After a gap in sweeping longer than the node timeout (Redis was stalled or down, or no worker
-- ran), the gateways could not report that they were alive either: every one would look dead.
-- Such a sweep counts every known gateway as alive now, giving it one timeout to report again;
-- one that is really gone is found a timeout later.
local swept_key = base .. 'swept'
local prev = tonumber(redis.call('GET', swept_key) or '0')
redis.call('SET', swept_key, string.format('%d', now), 'PX', ttl)
if prev == 0 or now - prev > tonumber(ARGV[1]) then
  local known = redis.call('ZRANGE', KEYS[1], 0, -1)
  for _, node in ipairs(known) do redis.call('ZADD', KEYS[1], 'XX', now, node) end
end

local cutoff = string.format('%d', now - tonumber(ARGV[1]))
local dead = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. cutoff, 'WITHSCORES')
for i = 1, #dead, 2 do
  if budget <= 0 then break end
  local node, last = dead[i], tonumber(dead[i + 1])
  local set = base .. 'node:' .. node
  local sids = redis.call('SPOP', set, budget)
  budget = budget - #sids
  local deadline = string.format('%d', last + grace)
  for _, sid in ipairs(sids) do
    local skey = base .. 'sess:' .. sid
    local s = redis.call('HMGET', skey, 'state', 'node')
    if s[1] == 'attached' and s[2] == node then
      redis.call('HSET', skey, 'state', 'detached', 'due', deadline)
      redis.call('ZADD', KEYS[2], deadline, sid)
      extend(skey, grace + ttl)
      extend(base .. 'rooms:' .. sid, grace + ttl)
      extend(KEYS[2], grace + ttl)
    end
  end
  if redis.call('EXISTS', set) == 0 then redis.call('ZREM', KEYS[1], node) end
end

local out = {}
if limit > 0 then
  local due = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', string.format('%d', now), 'LIMIT', 0, limit)
  local until_ = string.format('%d', now + lease)
  for _, sid in ipairs(due) do
    local skey = base .. 'sess:' .. sid
    local s = redis.call('HMGET', skey, 'uid', 'name', 'state')
    if not s[1] or s[3] == 'attached' then
      -- Gone (its TTL ran out) or attached again: nothing to hand out.
      redis.call('ZREM', KEYS[2], sid)
    else
      redis.call('HSET', skey, 'state', 'expired', 'due', until_)
      redis.call('ZADD', KEYS[2], until_, sid)
      local rkey = base .. 'rooms:' .. sid
      extend(skey, lease + ttl)
      extend(rkey, lease + ttl)
      extend(KEYS[2], lease + ttl)
      local entry = {sid, s[1], s[2]}
      for _, room in ipairs(redis.call('SMEMBERS', rkey)) do entry[#entry + 1] = room end
      out[#out + 1] = entry
    end
  end
end
return out
