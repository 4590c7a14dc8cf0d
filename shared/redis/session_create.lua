-- Creates a session attached to a connection on a gateway (session_create of the prelude).
--
-- KEYS[1]  session   hash  uid, name, node, conn, state = attached
-- KEYS[2]  rooms     set   the session's rooms
-- KEYS[3]  detached  zset  sid -> deadline or lease end
-- KEYS[4]  nodes     zset  node -> last sign of life (ms)
-- KEYS[5]  node set  set   sids attached on ARGV[4]
-- ARGV[1]  sid
-- ARGV[2]  user id
-- ARGV[3]  user name
-- ARGV[4]  node
-- ARGV[5]  conn
-- ARGV[6]  session TTL (ms): safety net, see the Sessions port (shared/sessions.ts)
-- ARGV[7]  key base "<p>{s:B}:" (for the previous node's set, a key of the same slot)
--
-- Returns 1.

session_create(KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], tonumber(ARGV[6]), ARGV[7], now_ms())
return 1
