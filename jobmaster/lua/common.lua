-- Prelude of the scripts: jobmaster.scripts puts before each script the definitions of this
-- file that it uses (directly or through others), so that a script makes the closures and
-- tables it needs and no others on each call. Every top-level statement here is a `local`
-- definition, with the comment lines above it.
-- The records the scripts edit (status, attempt, schedule state) are read and written whole
-- by the record codec below; see jobmaster/keys.py for their fields.
local rcall = redis.call
local match, sub = string.match, string.sub

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

-- Record codec: the one encoding of the records the scripts edit (status, attempt, schedule
-- state), read and written whole; jobmaster/record_codec.py is the same in Python, and
-- jobmaster/keys.py describes the fields. A record is a stream of msgpack values, one per
-- field in a fixed order, nil (0xc0) for an absent one: numbers as integers, texts as str,
-- flags as 1. The fields the hot paths use come first; the others are left out together
-- when they are all absent. Any bytes round-trip, and nothing is escaped or scanned:
-- cmsgpack.unpack_limit decodes a record into its values in one call (no table). The first
-- record a script call writes is packed by one msgpack.pack of its values (the cheapest for
-- one record); the others by one concatenation of their values' encodings, each made once
-- per call (ints, heads: the cheapest for many). Both write the same bytes.
-- Decoders return the fields (numbers as numbers, absent ones as nil), or nil and what is
-- wrong: a record must have its fields' kinds. JSON records (first byte '{') were written
-- by earlier versions: they are read (legacy_record), never written.
-- cmsgpack, or where a server lacks it (fakeredis, for jobmaster.testing) the part of it the
-- record codec uses, in Lua: pack of nil, texts and integers >= 0; unpack_limit of those and
-- of booleans. Made only when missing.
local msgpack = cmsgpack or (function()
  local byte, char, floor = string.byte, string.char, math.floor
  local function bytes(n, count)  -- n as `count` big-endian bytes
    local out = {}
    for i = count, 1, -1 do out[i] = n % 256; n = floor(n / 256) end
    return char(unpack(out))
  end
  local function one(v)
    if v == nil then return '\192' end
    if type(v) == 'string' then
      local len = #v
      if len < 32 then return char(160 + len) .. v end
      if len < 256 then return char(217, len) .. v end
      if len < 65536 then return char(218) .. bytes(len, 2) .. v end
      return char(219) .. bytes(len, 4) .. v
    end
    if v < 128 then return char(v) end
    if v < 256 then return char(204, v) end
    if v < 65536 then return char(205) .. bytes(v, 2) end
    if v < 4294967296 then return char(206) .. bytes(v, 4) end
    return char(207) .. bytes(floor(v / 4294967296), 4) .. bytes(v % 4294967296, 4)
  end
  local function pack(...)
    local out = {}
    for i = 1, select('#', ...) do out[i] = one((select(i, ...))) end
    return table.concat(out)
  end
  local function number(s, i, count)
    local n = 0
    for k = i, i + count - 1 do n = n * 256 + byte(s, k) end
    return n
  end
  local function unpack_limit(s, limit)
    local values, i, count = {}, 1, 0
    while i <= #s and count < limit do
      local c, v = byte(s, i), nil
      if c < 128 then v, i = c, i + 1
      elseif c == 192 then i = i + 1
      elseif c == 194 or c == 195 then v, i = c == 195, i + 1
      elseif c >= 204 and c <= 207 then
        local size = 2 ^ (c - 204)
        v, i = number(s, i + 1, size), i + 1 + size
      else
        local len, start
        if c >= 160 and c < 192 then len, start = c - 160, i + 1
        elseif c >= 217 and c <= 219 then
          local size = 2 ^ (c - 217)
          len, start = number(s, i + 1, size), i + 1 + size
        else error('Bad data format in input.') end
        if start + len - 1 > #s then error('Missing bytes in input.') end
        v, i = string.sub(s, start, start + len - 1), start + len
      end
      if i - 1 > #s then error('Missing bytes in input.') end
      count = count + 1
      values[count] = v
    end
    return i > #s and -1 or i - 1, unpack(values, 1, count)
  end
  return {pack = pack, unpack_limit = unpack_limit}
end)()

local NIL, unpack_limit, mpack = '\192', msgpack.unpack_limit, msgpack.pack
-- Whether no record was written yet in this call (cold); the encodings made so far in it
-- of integers (ints[n]) and of str headers (heads[len]), from its second record on.
local cold, ints, heads = true, nil, nil

-- The msgpack of a non-negative integer (`ints[n] or int(n)`: the encoders look it up first).
local function int(n)
  local b = n < 128 and n % 1 == 0 and string.char(n) or msgpack.pack(n)  -- fixint, or not
  ints[n] = b
  return b
end

-- The msgpack str header of a text of `len` bytes (`heads[len] or head(len)`, as int).
local function head(len)
  local h
  if len < 32 then
    h = string.char(160 + len)
  elseif len < 256 then
    h = string.char(217, len)
  elseif len < 65536 then
    h = string.char(218, math.floor(len / 256), len % 256)
  else
    h = string.char(219, math.floor(len / 16777216), math.floor(len / 65536) % 256,
      math.floor(len / 256) % 256, len % 256)
  end
  heads[len] = h
  return h
end

-- Whether each value is absent or of its kind ('n' a number 0 <= n < 1e15, 't' a text,
-- 'f' the flag 1), for the fields after those a hot path uses.
local function kinds_ok(kinds, ...)
  for i = 1, #kinds do
    local v, kind = select(i, ...), sub(kinds, i, i)
    if v ~= nil and not (kind == 't' and type(v) == 'string' or kind == 'f' and v == 1
        or kind == 'n' and type(v) == 'number' and v >= 0 and v < 1e15) then
      return false
    end
  end
  return true
end

-- A JSON record an earlier version wrote, in the current encoding (its fields in the order
-- of `names`; a flag is 1 when set), or nil and why not. The caller decodes that record.
local function legacy_record(raw, names, flags)
  local ok, record = pcall(cjson.decode, raw)
  if not ok or type(record) ~= 'table' then return nil, 'it is not a record' end
  local values = {}
  for i, name in ipairs(names) do
    local v = record[name]
    if v == cjson.null or v == false then v = nil end
    if v ~= nil and flags[name] then v = 1 end
    values[i] = v
  end
  return msgpack.pack(unpack(values, 1, #names))
end

-- A status: state, attempts, band 0..9, stream entry, lease token, finished ms; then due ms,
-- error type, error message, losses, untried attempts, suspect flag, cancellation flag, raw
-- (an unreadable status kept by CorruptStatus). Or nil and what is wrong with it: a status
-- edited by hand or by another program must cost only its own job (the scripts that read
-- many fail it with CorruptStatus).
local function decode_status(raw)
  local ok, rest, s, a, b, e, t, f, d, x, m, l, u, k, c, kept = pcall(unpack_limit, raw, 14)
  if ok and rest == -1 and (s == 'queued' or s == 'active' or s == 'succeeded'
      or s == 'scheduled' or s == 'failed' or s == 'cancelled' or s == 'blocked')
      and type(a) == 'number' and a >= 0 and a < 1e15 and a % 1 == 0
      and (b == 0 or b == 1 or b == 2 or b == 3 or b == 4 or b == 5 or b == 6 or b == 7
        or b == 8 or b == 9)
      and (e == nil or type(e) == 'string') and (t == nil or type(t) == 'string')
      and (f == nil or type(f) == 'number' and f >= 0 and f < 1e15)
      and (not (d or x or m or l or u or k or c or kept) or kinds_ok('nttnnfft', d, x, m, l, u,
        k, c, kept)) then
    return s, a, b, e, t, f, d, x, m, l, u, k, c, kept
  end
  if sub(raw, 1, 1) ~= '{' then return nil, 'it is not a status record' end
  local again, why = legacy_record(raw, {'s', 'a', 'b', 'e', 't', 'f', 'd', 'x', 'm', 'l', 'u',
    'k', 'c', 'raw'}, {k = true, c = true})
  if not again then return nil, why end
  s, a, b, e, t, f, d, x, m, l, u, k, c, kept = decode_status(again)
  if not s then return nil, 'it lacks a state, an attempt count or a band 0..9' end
  return s, a, b, e, t, f, d, x, m, l, u, k, c, kept
end

-- A status record of these fields (see decode_status).
local function encode_status(s, a, b, e, t, f, d, x, m, l, u, k, c, kept)
  local rare = d or x or m or l or u or k or c or kept
  if cold then
    cold = false
    if not rare then return mpack(s, a, b, e, t, f) end
    return mpack(s, a, b, e, t, f, d, x, m, l, u, k and 1 or nil, c and 1 or nil, kept)
  end
  if not ints then ints, heads = {}, {} end
  local record = (heads[#s] or head(#s)) .. s .. (ints[a] or int(a)) .. (ints[b] or int(b))
    .. (e and (heads[#e] or head(#e)) or NIL) .. (e or '')
    .. (t and (heads[#t] or head(#t)) or NIL) .. (t or '') .. (f and (ints[f] or int(f)) or NIL)
  if not rare then return record end
  return record .. (d and (ints[d] or int(d)) or NIL)
    .. (x and (heads[#x] or head(#x)) or NIL) .. (x or '')
    .. (m and (heads[#m] or head(#m)) or NIL) .. (m or '')
    .. (l and (ints[l] or int(l)) or NIL) .. (u and (ints[u] or int(u)) or NIL)
    .. (k and '\1' or NIL) .. (c and '\1' or NIL)
    .. (kept and (heads[#kept] or head(#kept)) or NIL) .. (kept or '')
end

-- An attempt's opening record, written when it starts (field <job id>:<n>): number, worker,
-- host, pid, started ms. Or nil and what is wrong with it. Its end is a record of its own
-- (decode_attempt_end), so that ending an attempt writes without reading.
local function decode_attempt(raw)
  local ok, rest, n, w, h, p, s = pcall(unpack_limit, raw, 5)
  if ok and rest == -1 and type(n) == 'number' and n >= 0 and n < 1e15 and n % 1 == 0
      and (w == nil or type(w) == 'string') and (h == nil or type(h) == 'string')
      and (p == nil or type(p) == 'number' and p >= 0 and p < 1e15)
      and (s == nil or type(s) == 'number' and s >= 0 and s < 1e15) then
    return n, w, h, p, s
  end
  if sub(raw, 1, 1) ~= '{' then return nil, 'it is not an attempt record' end
  local again, why = legacy_record(raw, {'n', 'w', 'h', 'p', 's'}, {})
  if not again then return nil, why end
  n, w, h, p, s = decode_attempt(again)
  if not n then return nil, 'it lacks an attempt number' end
  return n, w, h, p, s
end

-- An attempt's opening record of these fields (see decode_attempt).
local function encode_attempt(n, w, h, p, s)
  if cold then
    cold = false
    return mpack(n, w, h, p, s)
  end
  if not ints then ints, heads = {}, {} end
  return (ints[n] or int(n)) .. (w and (heads[#w] or head(#w)) or NIL) .. (w or '')
    .. (h and (heads[#h] or head(#h)) or NIL) .. (h or '') .. (p and (ints[p] or int(p)) or NIL)
    .. (s and (ints[s] or int(s)) or NIL)
end

-- An attempt's end record, written when it ends (field <job id>:<n>:end): finished ms,
-- outcome; then error type, error message, traceback. Or nil and what is wrong with it.
local function decode_attempt_end(raw)
  local ok, rest, f, o, x, m, tb = pcall(unpack_limit, raw, 5)
  if ok and rest == -1 and type(f) == 'number' and f >= 0 and f < 1e15 and type(o) == 'string'
      and (not (x or m or tb) or kinds_ok('ttt', x, m, tb)) then
    return f, o, x, m, tb
  end
  return nil, 'it is not an attempt end record'
end

-- An attempt's end record of these fields (see decode_attempt_end).
local function encode_attempt_end(f, o, x, m, tb)
  if cold then
    cold = false
    if not (x or m or tb) then return mpack(f, o) end
    return mpack(f, o, x, m, tb)
  end
  if not ints then ints, heads = {}, {} end
  local record = (ints[f] or int(f)) .. (heads[#o] or head(#o)) .. o
  if not (x or m or tb) then return record end
  return record .. (x and (heads[#x] or head(#x)) or NIL) .. (x or '')
    .. (m and (heads[#m] or head(#m)) or NIL) .. (m or '')
    .. (tb and (heads[#tb] or head(#tb)) or NIL) .. (tb or '')
end

-- A schedule's state: revision, next due ms, paused flag, last tick ms, last job id. Or nil
-- and what is wrong with it.
local function decode_schedule_state(raw)
  local ok, rest, r, d, p, l, j = pcall(unpack_limit, raw, 5)
  if ok and rest == -1 and type(r) == 'number' and r >= 0 and r < 1e15 and r % 1 == 0
      and kinds_ok('nfnt', d, p, l, j) then
    return r, d, p, l, j
  end
  if sub(raw, 1, 1) ~= '{' then return nil, 'it is not a schedule state record' end
  local again, why = legacy_record(raw, {'r', 'd', 'p', 'l', 'j'}, {p = true})
  if not again then return nil, why end
  r, d, p, l, j = decode_schedule_state(again)
  if not r then return nil, 'it lacks a revision' end
  return r, d, p, l, j
end

-- A schedule state record of these fields (see decode_schedule_state).
local function encode_schedule_state(r, d, p, l, j)
  if cold then
    cold = false
    return mpack(r, d, p and 1 or nil, l, j)
  end
  if not ints then ints, heads = {}, {} end
  return (ints[r] or int(r)) .. (d and (ints[d] or int(d)) or NIL) .. (p and '\1' or NIL)
    .. (l and (ints[l] or int(l)) or NIL) .. (j and (heads[#j] or head(#j)) or NIL) .. (j or '')
end

-- A status as a table (fields named as in keys.py), for the scripts that edit one job at a
-- time; nil and why when it cannot be read.
local function read_status(raw)
  local s, a, b, e, t, f, d, x, m, l, u, k, c, kept = decode_status(raw)
  if not s then return nil, a end
  return {s = s, a = a, b = b, e = e, t = t, f = f, d = d, x = x, m = m, l = l, u = u, k = k,
    c = c, raw = kept}
end

-- The record of a status table (see read_status).
local function status_text(st)
  return encode_status(st.s, st.a, st.b, st.e, st.t, st.f, st.d, st.x, st.m, st.l, st.u, st.k,
    st.c, st.raw)
end

-- read_status for a status that must be readable (an operation on one job, asked for by a
-- user): an error reply names the job otherwise.
local function must_read_status(raw, id)
  local st, why = read_status(raw)
  if not st then
    error({err = 'ERR the status of job ' .. id .. ' could not be read (' .. why .. ')'})
  end
  return st
end

-- What can be rescued from a status that cannot be decoded: its attempt count and band (0
-- when they cannot be found either), for CorruptStatus and for forgetting its attempts.
local function salvage_status(raw)
  local ok, a, b, _ = false, nil, nil, nil
  if sub(raw, 1, 1) == '{' then
    a, b = tonumber(match(raw, '"a":(%d+)[,}]')), tonumber(match(raw, '"b":(%d)[,}]'))
  else
    ok, _, _, a, b = pcall(unpack_limit, raw, 3)
    if not (ok and type(a) == 'number' and type(b) == 'number') then a, b = nil, nil end
  end
  if not (a and a >= 0 and a < 1e15) then a = 0 end
  if not (b and b >= 0 and b <= 9) then b = 0 end
  return math.floor(a), math.floor(b)
end

-- Redis full (maxmemory with noeviction) refuses a script's first write that may grow
-- memory, and lets every write after one that cannot (HDEL is one) go through. Scripts that
-- keep held work alive (a lease's renewal, a hand-back, a worker's heartbeat) call this
-- first: what they write is small, and refusing them would lose work already done.
-- The job ids in `key` are never empty, so nothing is deleted.
local function write_even_when_full(key)
  rcall('HDEL', key, '')
end

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

-- Text that may be unreadable, made printable (bytes outside printable ASCII as \xNN) and
-- cut to 4 KiB: what the records keep of an unreadable record.
local function printable(raw)
  return (string.gsub(sub(raw, 1, 4096), '[^\32-\126]',
    function(c) return string.format('\\x%02x', c:byte()) end))
end

-- The end record of an attempt that ended with an outcome and, optionally, an error (etype
-- '' for none; a traceback '' for none).
local function attempt_end(now, outcome, etype, emsg, tb)
  if etype == '' then return encode_attempt_end(now, outcome) end
  return encode_attempt_end(now, outcome, etype, emsg, tb ~= '' and tb or nil)
end

-- End a job whose status cannot be read (decode_status said `why`): it is failed with error
-- type CorruptStatus, the unreadable status kept as printable text in field `raw`, so that
-- nothing is lost and `retry` can run it again (in the band the old status named, if it can
-- be found, else band 0). The caller removes the job from the index of the state it found
-- it in.
local function fail_corrupt(status, failed, id, raw, why, now)
  local attempts, band = salvage_status(raw)
  rcall('HSET', status, id, encode_status('failed', attempts, band, nil, nil, now, nil,
    'CorruptStatus', 'the status of this job in Redis could not be read (' .. why
      .. '); the job was stopped here, its unreadable status kept in field raw',
    nil, nil, nil, nil, printable(raw)))
  rcall('ZADD', failed, now, id)
end

-- Record the end of attempt `field` (<job id>:<n>) with an outcome and, optionally, an
-- error (see attempt_end); its opening record is left as it is.
local function close_attempt(attempts, field, now, outcome, etype, emsg, tb)
  rcall('HSET', attempts, field .. ':end', attempt_end(now, outcome, etype, emsg, tb))
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
  local n = 0
  if raw_status then
    local s, a = decode_status(raw_status)
    n = s and tonumber(a) or salvage_status(raw_status)
  end
  for a = 1, n do
    local field = id .. ':' .. a
    rcall('HDEL', k.attempts, field, field .. ':end')
    rcall('HDEL', k.logs, field)
    rcall('HDEL', k.progress, field)
  end
  rcall('HDEL', k.jobs, id)
  rcall('HDEL', k.status, id)
  if k.limits then rcall('HDEL', k.limits, id) end  -- its controls (limits.lua)
  local queue = sub(k.status, 1, -7)  -- its relations (relations.lua)
  rcall('HDEL', queue .. 'waits', id)
  rcall('HDEL', queue .. 'related', id)
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
