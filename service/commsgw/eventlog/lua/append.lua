-- Stores notifications (dropping duplicates) and trims the stream by count and by age.
-- KEYS: 1..5 as in start.lua, then one dedup key per notification.
-- ARGV: 1 candidate log id, 2 max_events, 3 max_age_ms, 4 the traceparent of the POST that
-- brought them ('' when not traced; stored as field t), then per notification: event bytes,
-- latest-state field ('' when not an operation update), call field ('' when not a call
-- update), decision row and the code of its state (see commsgw.eventlog._callstates).
-- A call update's decision is the character of its row at 1 (the call has no latest state) or
-- at 2 + the code stored in field c of the call's latest entry (the latest hash maps the call
-- field to that entry's id): a applies it, s stores it flagged stale (field f), k stores it,
-- c stores it flagged as confirming an observed end and applies it, d drops it (answered as a
-- duplicate).
-- Returns one element per notification: its stream id, or 0 for a duplicate.
ensure(ARGV[1])
local stream = KEYS[1]
local max_events = tonumber(ARGV[2])
local max_age_ms = tonumber(ARGV[3])
local traceparent = ARGV[4]
local out = {}
for i = 1, #KEYS - 5 do
  local at = 5 * (i - 1) + 4
  local call = ARGV[at + 3]
  local decision = 'a'
  if call ~= '' then
    local row = ARGV[at + 4]
    local cur = redis.call('HGET', KEYS[4], call)
    local pos = 1
    if cur then
      local found = redis.call('XRANGE', stream, cur, cur)
      if #found > 0 then
        local f = found[1][2]
        for j = 1, #f, 2 do
          if f[j] == 'c' then
            pos = 2 + tonumber(f[j + 1])
          end
        end
      end
    end
    decision = string.sub(row, pos, pos)
  end
  if decision ~= 'd' and redis.call('SET', KEYS[5 + i], '1', 'NX', 'PX', ARGV[3]) then
    local fields = {'e', ARGV[at + 1]}
    if traceparent ~= '' then
      table.insert(fields, 't')
      table.insert(fields, traceparent)
    end
    if decision == 's' or decision == 'c' then
      table.insert(fields, 'f')
      table.insert(fields, decision)
    end
    if call ~= '' and (decision == 'a' or decision == 'c') then
      table.insert(fields, 'c')
      table.insert(fields, ARGV[at + 5])
    end
    local id = redis.call('XADD', stream, '*', unpack(fields))
    local ms = string.match(id, '^(%d+)-')
    local op = ARGV[at + 2]
    if op ~= '' then
      redis.call('HSET', KEYS[4], op, id)
      redis.call('ZADD', KEYS[5], ms, op)
    end
    if call ~= '' and (decision == 'a' or decision == 'c') then
      redis.call('HSET', KEYS[4], call, id)
      redis.call('ZADD', KEYS[5], ms, call)
    end
    out[i] = id
  else
    out[i] = 0
  end
end

local deleted = false
local t = redis.call('TIME')
local cutoff = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) - max_age_ms
if cutoff > 0 then
  local c = string.format('%.0f', cutoff)
  -- Look at the oldest entry first: XREVRANGE from a bound below every entry walks the whole
  -- stream (milliseconds at 10,000 entries), while with an older entry present it is a seek.
  local first = redis.call('XRANGE', stream, '-', '+', 'COUNT', 1)
  if #first > 0 and tonumber(string.match(first[1][1], '^(%d+)-')) < cutoff then
    local old = redis.call('XREVRANGE', stream, '(' .. c .. '-0', '-', 'COUNT', 1)
    deleted = old[1][1]
    redis.call('XTRIM', stream, 'MINID', '=', c .. '-0')
  end
end
local len = redis.call('XLEN', stream)
if len > max_events then
  local excess = len - max_events
  local gone = redis.call('XRANGE', stream, '-', '+', 'COUNT', excess)
  deleted = gone[#gone][1]
  redis.call('XTRIM', stream, 'MAXLEN', '=', max_events)
end
if deleted then
  redis.call('SET', KEYS[3], deleted)
  local before = '(' .. string.match(deleted, '^(%d+)-')
  local stale = redis.call('ZRANGEBYSCORE', KEYS[5], '-inf', before, 'LIMIT', 0, 512)
  if #stale > 0 then
    redis.call('HDEL', KEYS[4], unpack(stale))
    redis.call('ZREM', KEYS[5], unpack(stale))
  end
end
return out
