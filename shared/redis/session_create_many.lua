-- Creates several sessions, of one bucket or several, in one call: each as session_create.lua
-- does (session_create of the prelude), in order. One Redis only (the buckets are in several slots
-- of a Cluster).
--
-- KEYS     per session: session, rooms, detached, nodes, node set (see session_create.lua)
-- ARGV[1]  session TTL (ms)
-- ARGV[2..] per session: sid, user id, user name, node, conn, key base "<p>{s:B}:"
--
-- Returns the number of sessions created.

local ttl = tonumber(ARGV[1])
local now = now_ms()
local k = 1
local n = 0
for i = 2, #ARGV, 6 do
  session_create(KEYS[k], KEYS[k + 1], KEYS[k + 2], KEYS[k + 3], KEYS[k + 4], ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], ARGV[i + 4], ttl, ARGV[i + 5], now)
  k = k + 5
  n = n + 1
end
return n
