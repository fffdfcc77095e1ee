-- Prelude shared by every script (prepended by jobmaster.scripts when loading).
-- Records edited here are JSON objects (cjson); see jobmaster/keys.py for their fields.
local rcall = redis.call

-- The server's clock in milliseconds: every host agrees on it, whatever its own clock says.
local function now_ms()
  local t = rcall('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- An integer as text, formatted once per script call. Lua turns a number into text with
-- sprintf's %.14g wherever it meets one in a concatenation or an argument of redis.call
-- (and cjson with %.14g as well): in a profile of the claim and finish scripts, formatting
-- numbers took a sixth of Redis's instructions; %d, once, costs next to nothing.
local texts = {}
local function text(n)
  local s = texts[n]
  if not s then
    s = string.format('%d', n)
    texts[n] = s
  end
  return s
end

-- Redis full (maxmemory with noeviction) refuses a script's first write that may grow
-- memory, and lets every write after one that cannot (HDEL is one) go through. Scripts that
-- keep held work alive (a lease's renewal, a hand-back, a worker's heartbeat) call this
-- first: what they write is small, and refusing them would lose work already done.
-- The job ids in `key` are never empty, so nothing is deleted.
local function write_even_when_full(key)
  rcall('HDEL', key, '')
end

-- The status of a job as enqueue.lua writes it (attempts, band, entry): the claim edits
-- it as text. Any other shape goes through cjson.
local QUEUED_STATUS = '^{"a":(%d+),"b":(%d+),"s":"queued","e":"([%d-]+)"}$'
-- The status of an active job as the claim writes it (attempts, band, lease token, with no
-- escaped character): the end of its attempt edits it as text.
local ACTIVE_STATUS = '^{"a":(%d+),"b":(%d+),"s":"active","t":"([^"\\]*)"}$'

-- One [job id, state] change as JSON, for the hot paths: the ids they write match
-- [A-Za-z0-9_.:@/+=-]+ (or are 'invalid-<entry id>') and states are plain words, so nothing
-- needs escaping.
local function change_json(id, state)
  return '["' .. id .. '","' .. state .. '"]'
end

-- Append one entry listing changes, each encoded by change_json, to the capped events
-- stream (the hot paths encode theirs as they go).
local function emit_json(events, maxlen, changes)
  if #changes > 0 then
    rcall('XADD', events, 'MAXLEN', '~', maxlen, '*', 'd', '[' .. table.concat(changes, ',') .. ']')
  end
end

-- emit_json for a list of {job id, state} pairs, escaped by cjson.
local function emit(events, maxlen, changes)
  local encoded = {}
  for k, change in ipairs(changes) do encoded[k] = cjson.encode(change) end
  emit_json(events, maxlen, encoded)
end

-- Put a job in the scheduled set; wake the schedulers if it is now the earliest one.
local function schedule(scheduled, timers, id, due)
  local first = rcall('ZRANGE', scheduled, 0, 0, 'WITHSCORES')
  local score = string.format('%d', due)  -- not redis.call's %.17g
  if first[2] == nil or due < tonumber(first[2]) then
    rcall('XADD', timers, 'MAXLEN', '~', 16, '*', 'due', score)
  end
  rcall('ZADD', scheduled, score, id)
end

-- Add a runnable entry for a job to a band's stream, creating stream and group if needed.
local function add_entry(stream, group, id)
  local entry = rcall('XADD', stream, 'NOMKSTREAM', '*', 'id', id)
  if not entry then
    rcall('XGROUP', 'CREATE', stream, group, '0', 'MKSTREAM')
    entry = rcall('XADD', stream, '*', 'id', id)
  end
  return entry
end

-- The queued index's score of a stream entry: its time in ms and, as thousandths, its
-- sequence number within that ms (capped at 999), so that entries of one band keep their
-- order within a millisecond. Entry ids are 'ms-seq'.
local function entry_score(entry)
  local ms, seq = string.match(entry, '^(%d+)-(%d+)$')
  if #seq > 3 then return ms .. '.999' end
  return ms .. '.' .. string.rep('0', 3 - #seq) .. seq
end

-- rcall(command, key, args...) for a list of any length, sent in slices of 1000 (unpack is
-- limited by Lua's C stack); pairs stay together. Nothing is sent for none.
local function call_many(command, key, args)
  for first = 1, #args, 1000 do
    rcall(command, key, unpack(args, first, math.min(first + 999, #args)))
  end
end

-- HMGET key fields... for a list of any length (in slices, as call_many); false for a
-- missing field.
local function hmget_many(key, fields)
  local values = {}
  for first = 1, #fields, 1000 do
    local part = rcall('HMGET', key, unpack(fields, first, math.min(first + 999, #fields)))
    for k = 1, #part do values[first + k - 1] = part[k] end
  end
  return values
end

-- An attempt record (JSON, false when missing) closed with an outcome and, optionally, an
-- error.
local function closed_attempt(raw, number, now, outcome, etype, emsg, tb)
  if etype == '' and raw and raw:sub(-1) == '}' and not raw:find('"f":', 1, true) then
    return raw:sub(1, -2) .. ',"f":' .. text(now) .. ',"o":"' .. outcome .. '"}'  -- no decoding
  end
  local ok, at = true, nil
  if raw then ok, at = pcall(cjson.decode, raw) end
  if not ok or type(at) ~= 'table' then  -- unreadable: a new record that keeps it as text
    at = {n = tonumber(number), raw = raw and string.gsub(raw:sub(1, 4096), '[^\32-\126]',
      function(ch) return string.format('\\x%02x', ch:byte()) end) or nil}
  end
  at.f = now
  at.o = outcome
  if etype ~= '' then
    at.x = etype
    at.m = emsg
    if tb ~= '' then at.tb = tb end
  end
  return cjson.encode(at)
end

-- Close an attempt record with an outcome and, optionally, an error.
local function close_attempt(attempts, field, number, now, outcome, etype, emsg, tb)
  local raw = rcall('HGET', attempts, field)
  rcall('HSET', attempts, field, closed_attempt(raw, number, now, outcome, etype, emsg, tb))
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
-- k: {jobs, status, attempts, logs, progress, results, result_expiry, limits (nil when the
-- queue has no job with controls)}
local function forget(k, id, raw_status, idx)
  -- the attempt count, even from a status that cannot be decoded
  local n = raw_status and tonumber(string.match(raw_status, '"a":(%d+)')) or 0
  for a = 1, n do
    local field = id .. ':' .. a
    rcall('HDEL', k.attempts, field)
    rcall('HDEL', k.logs, field)
    rcall('HDEL', k.progress, field)
  end
  rcall('HDEL', k.jobs, id)
  rcall('HDEL', k.status, id)
  if k.limits then rcall('HDEL', k.limits, id) end  -- its controls (limits.lua)
  rcall('HDEL', k.results, id)
  rcall('ZREM', k.result_expiry, id)
  rcall('ZREM', idx, id)
end

-- Retention: forget finished jobs older than the retention and results past their ttl,
-- at most `limit` per index per call.
-- k: as forget's, and finished = {the indexes of the finished states}
local function prune(k, now, retention, limit)
  local forgotten = 0
  if k.limits and rcall('EXISTS', k.limits) == 0 then k.limits = nil end
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
