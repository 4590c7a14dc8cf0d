-- The prelude: prepended to every other script of this folder when it is loaded
-- (shared/redis-connection.ts), so these helpers exist in each one. Scripts do not redefine them.
-- It declares locals only and writes nothing: a script's KEYS/ARGV header below it stays the
-- whole story of what that script touches.

-- Redis's clock in ms: every deadline is measured on it, so the callers' clocks do not matter.
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- Gives `key` at least `ms` to live: an expiry only ever moves later (a key without one gets one).
local function extend(key, ms)
  local left = redis.call('PTTL', key)
  if left == -1 or (left >= 0 and left < ms) then redis.call('PEXPIRE', key, ms) end
end

-- An index kept as a hash (member -> value) and a sorted set (member by order) of at most `max`
-- members: the lowest-scored ones past it are dropped from both; both live `ttl_ms` from now.
local function cap_index(hash, zset, max, ttl_ms)
  local over = redis.call('ZCARD', zset) - max
  if over > 0 then
    local old = redis.call('ZRANGE', zset, 0, over - 1)
    redis.call('HDEL', hash, unpack(old))
    redis.call('ZREMRANGEBYRANK', zset, 0, over - 1)
  end
  redis.call('PEXPIRE', hash, ttl_ms)
  redis.call('PEXPIRE', zset, ttl_ms)
end

-- Appends one message to a room's history (append.lua, append_many.lua): checks the dedupe record
-- (`dedupe` may be nil), creates the history (new epoch: `epoch_candidate`) when it is missing,
-- assigns the next seq, stores `head .. seq .. tail`, trims to `max`, refreshes the TTLs and
-- records the dedupe key. Returns {seq, epoch, ts, duplicate (0|1)}; a duplicate returns the
-- first append's seq, epoch and ts and writes nothing.
local function append_entry(meta, hist, dedupe, head, tail, ts, max, ttl_ms, dedupe_ttl_ms, epoch_candidate)
  if dedupe then
    local seen = redis.call('GET', dedupe)
    if seen then
      local a = string.find(seen, '|', 1, true)
      local b = string.find(seen, '|', a + 1, true)
      return {tonumber(string.sub(seen, 1, a - 1)), string.sub(seen, a + 1, b - 1), string.sub(seen, b + 1), 1}
    end
  end
  local epoch = redis.call('HGET', meta, 'epoch')
  if not epoch then
    epoch = epoch_candidate
    redis.call('HSET', meta, 'epoch', epoch, 'seq', 0)
    -- Entries of a history whose meta is gone (evicted on its own) belong to no epoch now.
    redis.call('DEL', hist)
  end
  local seq = redis.call('HINCRBY', meta, 'seq', 1)
  local s = string.format('%d', seq)
  redis.call('ZADD', hist, seq, s .. ':' .. head .. s .. tail)
  redis.call('ZREMRANGEBYRANK', hist, 0, -(max + 1))
  redis.call('PEXPIRE', meta, ttl_ms)
  redis.call('PEXPIRE', hist, ttl_ms)
  if dedupe then
    redis.call('SET', dedupe, s .. '|' .. epoch .. '|' .. ts, 'PX', dedupe_ttl_ms)
  end
  return {seq, epoch, ts, 0}
end

-- Creates a session attached to a connection on a gateway (session_create.lua,
-- session_create_many.lua). An existing session with the same id is replaced, its rooms forgotten
-- (ids are random 128-bit, so this only happens by mistake). Keys: the session hash, its rooms
-- set, the bucket's detached zset, nodes zset and the node's set; `base` is the bucket's key base
-- "<p>{s:B}:" (for the previous node's set, a key of the same slot).
local function session_create(sess, rooms, detached, nodes, node_set, sid, uid, name, node, conn, ttl, base, now)
  local old = redis.call('HMGET', sess, 'node', 'state')
  if old[1] and old[2] == 'attached' and old[1] ~= node then
    redis.call('SREM', base .. 'node:' .. old[1], sid)
  end
  redis.call('DEL', sess, rooms)
  redis.call('ZREM', detached, sid)
  redis.call('HSET', sess, 'uid', uid, 'name', name, 'node', node, 'conn', conn, 'state', 'attached')
  redis.call('PEXPIRE', sess, ttl)
  -- A node first seen here counts as alive from now on, so its sessions are swept if it never calls
  -- nodeAlive. The node set's TTL is set when it is created only: nodeAlive renews it together with
  -- its members' (see node_alive.lua), which keeps every member's TTL at least the set's.
  redis.call('ZADD', nodes, 'NX', string.format('%d', now), node)
  extend(nodes, ttl)
  redis.call('SADD', node_set, sid)
  if redis.call('PTTL', node_set) == -1 then redis.call('PEXPIRE', node_set, ttl) end
end
