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

return append_entry(KEYS[1], KEYS[2], KEYS[3], ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4]), ARGV[5], ARGV[6], ARGV[7])
