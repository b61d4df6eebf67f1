-- Shared helpers, prepended to every script of the Redis event log (commsgw.eventlog._redis).
-- The shebang line (added when the scripts are loaded) makes Redis >= 7 refuse a writing script
-- as a whole when it is out of memory, instead of failing half-way through.
local function pred(id)
  local ms, seq = string.match(id, '^(%d+)-(%d+)$')
  if seq ~= '0' then
    return ms .. '-' .. string.format('%.0f', tonumber(seq) - 1)
  end
  if ms == '0' then
    return '0-0'
  end
  return string.format('%.0f', tonumber(ms) - 1) .. '-18446744073709551615'
end

local function last_generated(stream)
  local info = redis.call('XINFO', 'STREAM', stream)
  for i = 1, #info, 2 do
    if info[i] == 'last-generated-id' then
      return info[i + 1]
    end
  end
  return '0-0'
end

-- KEYS: 1 stream, 2 log-id, 3 trimmed, 4 latest, 5 latest-idx; returns the log id.
local function ensure(candidate)
  if redis.call('EXISTS', KEYS[1]) == 0 then
    redis.call('XGROUP', 'CREATE', KEYS[1], 'commsgw-init', '$', 'MKSTREAM')
    redis.call('XGROUP', 'DESTROY', KEYS[1], 'commsgw-init')
    redis.call('SET', KEYS[2], candidate)
    redis.call('SET', KEYS[3], '0-0')
    redis.call('DEL', KEYS[4], KEYS[5])
    return candidate
  end
  local id = redis.call('GET', KEYS[2])
  if id and redis.call('EXISTS', KEYS[3]) == 1 then
    return id
  end
  -- The stream exists but its metadata was lost: a new identity, and everything before the
  -- first retained entry counts as trimmed.
  redis.call('SET', KEYS[2], candidate)
  local first = redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', 1)
  if #first > 0 then
    redis.call('SET', KEYS[3], pred(first[1][1]))
  else
    redis.call('SET', KEYS[3], last_generated(KEYS[1]))
  end
  return candidate
end
