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
--   limit:starts:L  zset  '<id>:<attempt>' -> start ms, the starts inside the rate's window
--   limit:wait:L    list  ids of queued jobs held back by L (status `h` = 1, no entry)
-- A held job has left its stream: it costs nothing until a unit or a token frees it, when
-- it gets a new entry at the end of its band (`release_held`).

local LIMIT_GROUP = 'workers'  -- the consumer group (jobmaster.store.connection.GROUP)
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

-- The band stream of a queue, from its `limits` key (the scripts that release held jobs
-- have no stream in KEYS; it shares the queue's hash tag).
local function band_stream(limits, band)
  return string.sub(limits, 1, -7) .. 'stream:' .. band
end

-- Whether a job with controls `c` may start now. When it may not: false, and the ms at
-- which its rate has room again (nil when a unit must be freed first).
local function limit_admits(c, prefix, now)
  if not c.l then return true end
  if c.max and rcall('SCARD', prefix .. 'active:' .. c.l) >= c.max then return false, nil end
  if c.rn then
    local starts = prefix .. 'starts:' .. c.l
    rcall('ZREMRANGEBYSCORE', starts, '-inf', now - c.rms)  -- the window is (now - w, now]
    if rcall('ZCARD', starts) >= c.rn then
      local oldest = rcall('ZRANGE', starts, 0, 0, 'WITHSCORES')
      return false, tonumber(oldest[2]) + c.rms
    end
  end
  return true
end

-- A job started under its limits: it takes a unit and a token.
local function limit_take(c, prefix, id, number, now)
  if not c.l then return end
  if c.max then rcall('SADD', prefix .. 'active:' .. c.l, id) end
  if c.rn then
    local starts = prefix .. 'starts:' .. c.l
    rcall('ZADD', starts, now, id .. ':' .. number)
    rcall('PEXPIRE', starts, c.rms + 1000)
  end
end

-- Hold a queued job back (its stream entry was read): it waits on its limit key's list;
-- when its rate has room again at `due`, the promoter is woken then.
-- st: its status (decoded); returns the status to write.
local function limit_hold(c, prefix, id, st, due, limit_due, timers)
  rcall('RPUSH', prefix .. 'wait:' .. c.l, id)
  st.e, st.h = nil, 1
  if due then
    local first = rcall('ZRANGE', limit_due, 0, 0, 'WITHSCORES')
    rcall('ZADD', limit_due, 'LT', string.format('%d', due), c.l)
    if first[2] == nil or due < tonumber(first[2]) then
      rcall('XADD', timers, 'MAXLEN', '~', 16, '*', 'due', string.format('%d', due))
    end
  end
  return st
end

-- Give up to `count` jobs held back by limit key `l` a new entry at the end of their band
-- (the claim checks their limits again). Ids whose job is no longer held are dropped.
-- Returns how many were released.
local function release_held(limits, status, l, count)
  local wait = limit_prefix(limits) .. 'wait:' .. l
  local released = 0
  while released < count do
    local id = rcall('LPOP', wait)
    if not id then break end
    local raw = rcall('HGET', status, id)
    local ok, st = false, nil
    if raw then ok, st = pcall(cjson.decode, raw) end
    if ok and type(st) == 'table' and st.s == 'queued' and st.h == 1 and not st.e
        and type(st.b) == 'number' then
      st.h = nil
      st.e = add_entry(band_stream(limits, st.b), LIMIT_GROUP, id)
      rcall('HSET', status, id, cjson.encode(st))
      released = released + 1
    end
  end
  return released
end

-- A job's attempt ended (or was taken back): its unit is free, and one job held back by
-- its limit key may go.
local function limit_free(c, limits, status, id)
  if not (c and c.l and c.max) then return end
  if rcall('SREM', limit_prefix(limits) .. 'active:' .. c.l, id) == 1 then
    release_held(limits, status, c.l, 1)
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
local function free_units(limits, unique, status, ended)
  if #ended == 0 then return end
  local ids = {}
  for k, e in ipairs(ended) do ids[k] = e[1] end
  local controls = limits_of(limits, ids)
  if not controls then return end
  for k, e in ipairs(ended) do
    local c = parse_limits(controls[k])
    if c then
      limit_free(c, limits, status, e[1])
      if e[2] then unique_free(c, unique, e[1]) end
    end
  end
end

-- Check `count` limit keys chosen at random: a unit held by a job that is no longer active
-- (an end no script saw: a job deleted, or a status edited by hand) is freed, and a job
-- its limit held back goes. Nothing is done for a queue without limits.
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
          release_held(limits, status, l, 1)
        end
      end
    end
  end
end

-- Release the jobs held back by limit keys whose rate has room again (due by now): as many
-- as there are free starts in the window; the key is due again while jobs still wait.
-- Returns how many jobs were released.
local function release_due(limits, limit_keys, limit_due, status, now)
  local due = rcall('ZRANGEBYSCORE', limit_due, '-inf', now, 'LIMIT', 0, 100)
  if #due == 0 then return 0 end
  local prefix, released = limit_prefix(limits), 0
  for _, l in ipairs(due) do
    rcall('ZREM', limit_due, l)
    local rn, rms = string.match(rcall('HGET', limit_keys, l) or '', '\t(%d+)/(%d+)$')
    rn, rms = tonumber(rn), tonumber(rms)
    local room, starts = 1, prefix .. 'starts:' .. l
    if rn then
      rcall('ZREMRANGEBYSCORE', starts, '-inf', now - rms)
      room = rn - rcall('ZCARD', starts)
    end
    if room > 0 then released = released + release_held(limits, status, l, room) end
    if rn and rcall('LLEN', prefix .. 'wait:' .. l) > 0 then
      local oldest = rcall('ZRANGE', starts, 0, 0, 'WITHSCORES')
      local next_due = oldest[2] and tonumber(oldest[2]) + rms or now + rms
      rcall('ZADD', limit_due, string.format('%d', math.max(next_due, now + 1)), l)
    end
  end
  return released
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
