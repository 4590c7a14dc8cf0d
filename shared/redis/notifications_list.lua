-- A user's notifications, newest first, at most `limit`, with the unread count, from one consistent
-- view. Walks the order newest first in pages and keeps the unread ones when asked to: unread
-- notifications behind many newer read ones are still found, and the walk is bounded by the cap
-- (notificationsMax members at most); it stops early once every unread one was found.
--
-- KEYS[1]  items   hash  id -> JSON of the notification without `read`
-- KEYS[2]  order   zset  id -> ts (ms)
-- KEYS[3]  unread  set   the ids not read yet
-- ARGV[1]  limit (a whole number >= 0)
-- ARGV[2]  '1': unread ones only
--
-- Returns {unread count, json, read (0|1), json, read, ...}, newest first.

local PAGE = 128
local unreadOnly = ARGV[2] == '1'
local unread = redis.call('SCARD', KEYS[3])
local want = tonumber(ARGV[1])
if unreadOnly and unread < want then want = unread end

local out = {unread}
local found = 0
local start = 0
while found < want do
  local size = PAGE
  if not unreadOnly and want - found < size then size = want - found end
  local ids = redis.call('ZREVRANGE', KEYS[2], start, start + size - 1)
  if #ids == 0 then break end
  local flags = redis.call('SMISMEMBER', KEYS[3], unpack(ids))
  local picked, pickedRead = {}, {}
  local examined = 0
  for i = 1, #ids do
    examined = i
    if not unreadOnly or flags[i] == 1 then
      picked[#picked + 1] = ids[i]
      pickedRead[#picked] = 1 - flags[i]
      if found + #picked >= want then break end
    end
  end
  if #picked > 0 then
    local jsons = redis.call('HMGET', KEYS[1], unpack(picked))
    for j = 1, #picked do
      -- An id without its item (which only eviction could cause) is skipped, not returned empty.
      if jsons[j] then
        out[#out + 1] = jsons[j]
        out[#out + 1] = pickedRead[j]
        found = found + 1
      end
    end
  end
  -- Continue after the last id looked at, not after the page: a skipped id may leave `found` short.
  start = start + examined
end
return out
