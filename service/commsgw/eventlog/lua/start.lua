-- Makes sure the stream and its identity exist (see `ensure` in prelude.lua).
-- KEYS: 1 stream, 2 log-id, 3 trimmed, 4 latest, 5 latest-idx.
-- ARGV: 1 candidate log id. Returns {log id, last generated id, trimmed mark}: read together, so
-- a reader that finds a new log learns where that log starts (its trimmed mark).
local id = ensure(ARGV[1])
return {id, last_generated(KEYS[1]), redis.call('GET', KEYS[3])}
