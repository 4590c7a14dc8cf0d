-- Appends several messages, of one room or several, in one call: each as append.lua does
-- (append_entry of the prelude), in order, so the messages of one room get consecutive seqs in the
-- order given. One Redis only (the keys of several rooms are in several slots of a Cluster).
--
-- KEYS     per message: meta, history, and its dedupe key when it has one (see append.lua)
-- ARGV[1]  historyMax    entries kept
-- ARGV[2]  historyTtlMs  TTL of meta and history, refreshed here
-- ARGV[3]  dedupeTtlMs   TTL of the dedupe records
-- ARGV[4]  epoch candidate, used only for a history created here (rooms' epochs are told apart
--          per room, so rooms created in one call may share it)
-- ARGV[5..] per message: head, tail, ts, and 1 when it has a dedupe key (else 0)
--
-- Returns, per message in order, seq, epoch, ts, duplicate (0|1): one flat list.

local max = tonumber(ARGV[1])
local out = {}
local k = 1
for i = 5, #ARGV, 4 do
  local dedupe = nil
  if ARGV[i + 3] == '1' then dedupe = KEYS[k + 2] end
  local r = append_entry(KEYS[k], KEYS[k + 1], dedupe, ARGV[i], ARGV[i + 1], ARGV[i + 2], max, ARGV[2], ARGV[3], ARGV[4])
  if dedupe then k = k + 3 else k = k + 2 end
  out[#out + 1] = r[1]
  out[#out + 1] = r[2]
  out[#out + 1] = r[3]
  out[#out + 1] = r[4]
end
return out
