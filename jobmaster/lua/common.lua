-- Prelude shared by every script (prepended by jobmaster.scripts when loading).
-- Records edited here are JSON objects (cjson); see jobmaster/keys.py for their fields.
local rcall = redis.call

-- The server's clock in milliseconds: every host agrees on it, whatever its own clock says.
local function now_ms()
  local t = rcall('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- Append one entry listing [job id, state] changes to the capped events stream.
local function emit(events, maxlen, changes)
  if #changes > 0 then
    rcall('XADD', events, 'MAXLEN', '~', maxlen, '*', 'd', cjson.encode(changes))
  end
end

-- Put a job in the scheduled set; wake the schedulers if it is now the earliest one.
local function schedule(scheduled, timers, id, due)
  local first = rcall('ZRANGE', scheduled, 0, 0, 'WITHSCORES')
  if first[2] == nil or due < tonumber(first[2]) then
    rcall('XADD', timers, 'MAXLEN', '~', 16, '*', 'due', due)
  end
  rcall('ZADD', scheduled, due, id)
end

-- Add a runnable entry for a job to a band's stream, creating stream and group if needed.
local function add_entry(stream, group, id)
  if rcall('EXISTS', stream) == 0 then
    rcall('XGROUP', 'CREATE', stream, group, '0', 'MKSTREAM')
  end
  return rcall('XADD', stream, '*', 'id', id)
end

-- Acknowledge and delete a job's stream entry, if it has one.
local function drop_entry(stream, group, entry)
  if entry then
    rcall('XACK', stream, group, entry)
    rcall('XDEL', stream, entry)
  end
end

-- Close an attempt record with an outcome and, optionally, an error.
local function close_attempt(attempts, field, number, now, outcome, etype, emsg, tb)
  local raw = rcall('HGET', attempts, field)
  local at = raw and cjson.decode(raw) or {n = number}
  at.f = now
  at.o = outcome
  if etype ~= '' then
    at.x = etype
    at.m = emsg
    if tb ~= '' then at.tb = tb end
  end
  rcall('HSET', attempts, field, cjson.encode(at))
end

-- The entries of an XREADGROUP reply on one stream ({{stream, entries}}; some Redis
-- emulations return {stream, entries}).
local function read_entries(reply)
  if type(reply) ~= 'table' or reply[1] == nil then return {} end
  if type(reply[1]) == 'table' then return reply[1][2] end
  return reply[2]
end

-- Forget a finished job: its record, status, attempts, logs, progress, result and its
-- entry in its state's index `idx`.
-- k: {jobs, status, attempts, logs, progress, results, result_expiry}
local function forget(k, id, raw_status, idx)
  local n = raw_status and cjson.decode(raw_status).a or 0
  for a = 1, n do
    local field = id .. ':' .. a
    rcall('HDEL', k.attempts, field)
    rcall('HDEL', k.logs, field)
    rcall('HDEL', k.progress, field)
  end
  rcall('HDEL', k.jobs, id)
  rcall('HDEL', k.status, id)
  rcall('HDEL', k.results, id)
  rcall('ZREM', k.result_expiry, id)
  rcall('ZREM', idx, id)
end

-- Retention: forget finished jobs older than the retention and results past their ttl,
-- at most `limit` per index per call.
-- k: as forget's, and finished = {the indexes of the finished states}
local function prune(k, now, retention, limit)
  local forgotten = 0
  for _, idx in ipairs(k.finished) do
    local old = rcall('ZRANGEBYSCORE', idx, '-inf', now - retention, 'LIMIT', 0, limit)
    for _, id in ipairs(old) do
      forget(k, id, rcall('HGET', k.status, id), idx)
      forgotten = forgotten + 1
    end
  end
  local expired = rcall('ZRANGEBYSCORE', k.result_expiry, '-inf', now, 'LIMIT', 0, limit)
  for _, id in ipairs(expired) do
    rcall('HDEL', k.results, id)
    rcall('ZREM', k.result_expiry, id)
  end
  return forgotten
end
