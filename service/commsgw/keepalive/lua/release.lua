-- Gives a keepAlive lease back if this replica still holds it (commsgw.keepalive._registry).
-- KEYS: 1 the lease. ARGV: 1 this replica's id. Returns 1 when it was released.
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
