-- Prelude of the scripts that take part in flow control (see jobmaster/limits.py), after
-- common.lua and integrity.lua: concurrency and rate limits, and unique keys.
--
-- A job with controls has a line in its queue's `limits` hash (id -> line), written when it
-- is enqueued: unique key, unique_for ms, limit key, max_running, rate count, rate window
-- ms, tab-separated, each empty when not set. Jobs without controls have none, and a queue
-- that never had one has no `limits` hash: the scripts then do nothing more than one EXISTS.
--
-- The keys of one limit key L share the queue's hash tag and a prefix derived from the
-- `limits` key's name (`<ns>:{q}:limits` -> `<ns>:{q}:limit:`):
--   limit:active:L  set   ids of L's jobs running now (a unit each, max_running)
--   limit:starts:L  hash  bucket -> starts in it (see rate_window)
--   limit:wait:L    list  ids of queued jobs held back by L, oldest first
-- and the queue's `limit_ready` set lists the keys that may have room for a held job (a
-- unit was freed, or the rate's window has room); `wake` gets an entry when a key becomes
-- ready or a job is held back for resources, so that idle workers claim again.
-- A held job keeps its status (queued) untouched and has no stream entry: it costs an
-- RPUSH to hold and an LPOP to take, and the claim starts it straight from its wait list.

local LIMITS_LINE = '^([^\t]*)\t(%d*)\t([^\t]*)\t(%d*)\t(%d*)\t(%d*)\t?([^\t]*)$'

-- Resources as written in a line or by a worker, 'gpu=1,mem=8589934592', as a table (nil
-- for none).
local function parse_resources(text)
  if not text or text == '' then return nil end
  local r = {}
  for name, amount in string.gmatch(text, '([%w_]+)=([%d.eE+-]+)') do r[name] = tonumber(amount) end
  return next(r) and r or nil
end

-- The controls of a job from its line (nil for a line that cannot be read: no controls).
local function parse_limits(line)
  if not line then return nil end
  local u, ufor, l, max, rn, rms, r = string.match(line, LIMITS_LINE)
  if not u then return nil end
  return {u = u ~= '' and u or nil, ufor = tonumber(ufor) or 0, l = l ~= '' and l or nil,
    max = tonumber(max), rn = tonumber(rn), rms = tonumber(rms), r = parse_resources(r)}
end

-- Whether resources `needs` fit in `free` (nil: a worker without limits, where all fit).
local function fits(needs, free)
  if not needs or not free then return true end
  for name, amount in pairs(needs) do
    if amount > (free[name] or 0) then return false end
  end
  return true
end

-- Take `needs` out of `free` (a job starts on the worker).
local function take_resources(needs, free)
  if not needs or not free then return end
  for name, amount in pairs(needs) do free[name] = (free[name] or 0) - amount end
end

-- The prefix of a queue's limit keys, from its `limits` key.
local function limit_prefix(limits)
  return string.sub(limits, 1, -7) .. 'limit:'
end

-- Another key of the queue, from its `limits` key (the scripts that mark keys ready have
-- no such key in KEYS; it shares the queue's hash tag).
local function queue_key(limits, name)
  return string.sub(limits, 1, -7) .. name
end

-- Rates: the starts of a key are counted in buckets of a twentieth of the window
-- (limit:starts:L, a hash: bucket number -> starts, and `t` the starts of the buckets from
-- number `f` on). A start is allowed while the buckets that overlap the window
-- (now - w, now] hold fewer than N starts: every start inside the window is in one of
-- them, so no window of length w, wherever it is placed, ever holds more than N starts (a
-- bucket partly out of the window still counts whole: the rate may run up to a twentieth
-- below N, never above). A start costs two HINCRBY and one HMGET of two fields, whatever N.
local RATE_BUCKETS = 20

-- The starts counted in key `c`'s window now (buckets that left it are taken out of `t`),
-- the window's first bucket number, and the bucket width (ms).
local function rate_window(c, prefix, now)
  local key = prefix .. 'starts:' .. c.l
  local width = math.max(1, math.ceil(c.rms / RATE_BUCKETS))
  local first = math.floor((now - c.rms + 1) / width)
  local tf = rcall('HMGET', key, 't', 'f')
  local total, from = tonumber(tf[1]) or 0, tonumber(tf[2])
  if not from or from < first then
    if from and first - from <= RATE_BUCKETS then
      local gone = {}
      for b = from, first - 1 do gone[#gone + 1] = string.format('%d', b) end
      local counts = rcall('HMGET', key, unpack(gone))
      for k = 1, #counts do total = total - (tonumber(counts[k]) or 0) end
      rcall('HDEL', key, unpack(gone))
    elseif from then  -- idle for longer than a window: nothing counted is left in it
      rcall('DEL', key)
      total = 0
    end
    rcall('HSET', key, 't', string.format('%d', total), 'f', string.format('%d', first))
    rcall('PEXPIRE', key, c.rms + width)
  end
  return total, first, width
end

-- How many more starts key `c`'s rate admits now, and, when none, the ms at which it
-- admits one again.
local function rate_room(c, prefix, now)
  local total, first, width = rate_window(c, prefix, now)
  local left = c.rn - total
  if left > 0 then return left, nil end
  -- the oldest buckets leave the window one by one: when enough have left, one more fits
  local fields = {}
  for b = first, first + RATE_BUCKETS do fields[#fields + 1] = string.format('%d', b) end
  local counts = rcall('HMGET', prefix .. 'starts:' .. c.l, unpack(fields))
  for k = 1, #counts do
    total = total - (tonumber(counts[k]) or 0)
    if total < c.rn then return 0, (first + k) * width + c.rms - 1 end
  end
  return 0, now + c.rms
end

-- Whether a job with controls `c` may start now. When it may not: false, and the ms at
-- which its rate has room again (nil when a unit must be freed first).
local function limit_admits(c, prefix, now)
  if not c.l then return true end
  if c.max and rcall('SCARD', prefix .. 'active:' .. c.l) >= c.max then return false, nil end
  if c.rn then
    local left, due = rate_room(c, prefix, now)
    if left <= 0 then return false, due end
  end
  return true
end

-- A job started under its limits: it takes a unit and a start.
local function limit_take(c, prefix, id, number, now)
  if not c.l then return end
  if c.max then rcall('SADD', prefix .. 'active:' .. c.l, id) end
  if c.rn then  -- after limit_admits, whose rate_window brought `t` and `f` up to now
    local starts = prefix .. 'starts:' .. c.l
    local width = math.max(1, math.ceil(c.rms / RATE_BUCKETS))
    rcall('HINCRBY', starts, string.format('%d', math.floor(now / width)), 1)
    rcall('HINCRBY', starts, 't', 1)
  end
end

-- Limit key of controls `c` has room again for its rate at `due`: the promoter marks it
-- ready then (woken through the timers stream when it is the earliest).
local function limit_hold_due(c, due, limit_due, timers)
  local first = rcall('ZRANGE', limit_due, 0, 0, 'WITHSCORES')
  rcall('ZADD', limit_due, 'LT', string.format('%d', due), c.l)
  if first[2] == nil or due < tonumber(first[2]) then
    rcall('XADD', timers, 'MAXLEN', '~', 16, '*', 'due', string.format('%d', due))
  end
end

-- Hold a queued job back (its stream entry was read): it waits on its limit key's list;
-- when its rate has room again at `due`, the key is marked ready then.
local function limit_hold(c, prefix, id, due, limit_due, timers)
  rcall('RPUSH', prefix .. 'wait:' .. c.l, id)
  if due then limit_hold_due(c, due, limit_due, timers) end
end

-- Limit key `l` may have room for a held job: list it as ready (when jobs wait on it) and,
-- when it was not listed yet, wake idle workers.
local function mark_ready(limits, l)
  if rcall('LLEN', limit_prefix(limits) .. 'wait:' .. l) == 0 then return end
  if rcall('SADD', queue_key(limits, 'limit_ready'), l) == 1 then
    rcall('XADD', queue_key(limits, 'wake'), 'MAXLEN', '~', 16, '*', 'l', l)
  end
end

-- A job's attempt ended (or was taken back): its unit is free.
local function limit_free(c, limits, id)
  if not (c and c.l and c.max) then return end
  if rcall('SREM', limit_prefix(limits) .. 'active:' .. c.l, id) == 1 then
    mark_ready(limits, c.l)
  end
end

-- A job reached a final state: its unique key is free (unless it is kept for unique_for
-- after the end: then the next enqueue with the key finds it ended long enough ago).
local function unique_free(c, unique, id)
  if c and c.u and c.ufor == 0 and rcall('HGET', unique, c.u) == id then
    rcall('HDEL', unique, c.u)
  end
end

-- The controls of the jobs `ids` (a table of lines or false per id), or nil when the
-- queue has no job with controls.
local function limits_of(limits, ids)
  if rcall('EXISTS', limits) == 0 then return nil end
  return hmget_many(limits, ids)
end

-- Attempts that ended outside finish.lua (handed back, taken back, failed): `ended` lists
-- {id, final} pairs, final when the job reached a final state (its unique key is freed).
local function free_units(limits, unique, ended)
  if #ended == 0 then return end
  local ids = {}
  for k, e in ipairs(ended) do ids[k] = e[1] end
  local controls = limits_of(limits, ids)
  if not controls then return end
  for k, e in ipairs(ended) do
    local c = parse_limits(controls[k])
    if c then
      limit_free(c, limits, e[1])
      if e[2] then unique_free(c, unique, e[1]) end
    end
  end
end

-- Check `count` limit keys chosen at random: a unit held by a job that is no longer active
-- (an end no script saw: a job deleted, or a status edited by hand) is freed, and a key
-- whose jobs wait is marked ready again (in case a wake-up was lost). Nothing is done for
-- a queue without limits.
local function sweep_units(limits, limit_keys, status, count)
  local keys = rcall('HRANDFIELD', limit_keys, count)
  if #keys == 0 then return end
  local prefix = limit_prefix(limits)
  for _, l in ipairs(keys) do
    local active = prefix .. 'active:' .. l
    local members = rcall('SRANDMEMBER', active, 100)
    if #members > 0 then
      local raws = hmget_many(status, members)
      for k, id in ipairs(members) do
        local ok, st = false, nil
        if raws[k] then ok, st = pcall(cjson.decode, raws[k]) end
        if not (ok and type(st) == 'table' and st.s == 'active') then
          rcall('SREM', active, id)
        end
      end
    end
    mark_ready(limits, l)
  end
end

-- Limit keys whose rate has room again by now (due): marked ready. Returns how many.
local function release_due(limits, limit_due, now)
  local due = rcall('ZRANGEBYSCORE', limit_due, '-inf', now, 'LIMIT', 0, 100)
  for _, l in ipairs(due) do
    rcall('ZREM', limit_due, l)
    mark_ready(limits, l)
  end
  return #due
end

-- The limits of limit key `l` as its queue lists them (limit_keys: "max<TAB>count/ms").
local function key_limits(limit_keys, l)
  local max, rn, rms = string.match(rcall('HGET', limit_keys, l) or '', '^(%d*)\t(%d*)/?(%d*)$')
  return {l = l, max = tonumber(max), rn = tonumber(rn), rms = tonumber(rms)}
end

-- Whether the job `holder` still holds its unique key: it has not ended, or it ended less
-- than `ufor` ms before `now`.
local function unique_live(status, holder, ufor, now)
  local raw = rcall('HGET', status, holder)
  if not raw then return false end  -- forgotten
  local ok, st = pcall(cjson.decode, raw)
  if not ok or type(st) ~= 'table' then return false end
  if st.s ~= 'succeeded' and st.s ~= 'failed' and st.s ~= 'cancelled' then return true end
  return ufor > 0 and type(st.f) == 'number' and now - st.f < ufor
end

-- The id of the live job that holds the unique key of controls `c` (nil when none).
local function unique_holder(c, unique, status, id, now)
  local holder = c and c.u and rcall('HGET', unique, c.u)
  if holder and holder ~= id and unique_live(status, holder, c.ufor, now) then return holder end
  return nil
end

-- A job with controls `c` (its line `line`) was created: record them, take its unique key,
-- and list its limit key with its limits.
local function controls_created(c, line, limits, unique, limit_keys, id)
  rcall('HSET', limits, id, line)
  if c.u then rcall('HSET', unique, c.u, id) end
  if c.l then
    rcall('HSET', limit_keys, c.l, (c.max and text(c.max) or '') .. '\t'
      .. (c.rn and (text(c.rn) .. '/' .. text(c.rms)) or ''))
  end
end
