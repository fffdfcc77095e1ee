--[[ Claim up to COUNT runnable jobs, highest band first; start their attempts and leases.
KEYS[1] jobs  KEYS[2] status  KEYS[3] queued  KEYS[4] active  KEYS[5] attempts
KEYS[6] events  KEYS[7] failed  KEYS[8..17] streams of bands 0..9
KEYS[18] paused  KEYS[19] limits  KEYS[20] limit_due  KEYS[21] timers
KEYS[22] resource_wait  KEYS[23] wake  KEYS[24] limit_ready  KEYS[25] limit_keys
KEYS[26] the caller's claim memo (a string key of this queue and consumer)
(and the keys of the queue's limits, named after KEYS[19]: see limits.lua)
ARGV[1] consumer group  ARGV[2] consumer (worker id)  ARGV[3] count  ARGV[4] lease (ms)
ARGV[5] hostname  ARGV[6] pid  ARGV[7] events maxlen
ARGV[8] claim id: the caller's name for this claim, the same when it sends the claim again
ARGV[9] how many suspect jobs the caller may take (a worker: 1 when it holds none, else 0)
ARGV[10] '1' when this claim may have been sent before (see the claim memo), else '0'
ARGV[11] the caller's free resources ('gpu=1,mem=8589934592'), or '' for a worker that
  advertises none (every job fits it)
Returns: {claimed, newest, errors, deferred, suspects, paused, more, held}
  claimed: flat, four values per job: id, attempt number, job record, earlier attempts that
  do not count as tries (lost or handed back)
  newest: when nothing was claimed, the newest entry id of each band 0..9 ('0-0' when
  empty), then of wake, from which a blocking XREAD waits for new work;
  otherwise empty.
  errors: what Redis answered when a band's stream could not be read (a missing consumer
  group is created again and the stream read; anything else is reported here and the other
  bands are still claimed). When nothing was claimed, these errors are raised instead.
  deferred: suspect jobs this claim read but could not take (they got a new entry at the end
  of their band).
  suspects: the ids of the claimed jobs that are suspects.
  paused: 1 when the queue is paused (nothing was claimed), else 0.
  more: 1 when this claim held back as many jobs over their limits as one call may, and
  the streams may hold more to claim at once (the caller claims again without waiting).
  held: how many jobs this claim held back (over a limit, or for resources).
A job over its concurrency or rate limit (limits.lua) is held back: it leaves its stream
for its limit key's wait list, and a band whose read held jobs back is read again, so that
jobs behind a limited one are claimed (up to MAX_HELD per call).
A job that needs more resources than the caller has free is held back the same way, on the
queue's resource_wait list, and `wake` gets an entry so that idle workers claim again.
A claim first starts held jobs: those of the limit keys listed in limit_ready (a unit was
freed or the rate has room) while their limits admit them, then those held for resources
that fit the caller's free resources; then it reads the streams.
Entries are read with NOACK, and what was read is trimmed from the stream at once (XTRIM
MINID, which removes whole nodes and steps over entries; no XDEL, which looks each one up):
a stream holds the entries not yet delivered, and nothing else. What guards an attempt is
its lease in `active`, written in this same script, not a pending entry: reclaim.lua takes
back the jobs whose lease expired. An entry without a known job is recorded as a failed
job 'invalid-<entry id>', and a job whose status cannot be read is failed (CorruptStatus),
so that one bad key costs only its own job: the rest of the batch is claimed.
A claim that started jobs leaves their ids in the claim memo (for one lease, as its events
entry lists their change to active): the same claim sent again (its reply was lost,
ARGV[10] '1') answers with those jobs rather than claiming others.
A suspect job (one whose attempt was lost: see reclaim.lua) runs on a worker that holds no
other suspect, so that a job that kills its worker takes no other suspect down with it.
The jobs of a band are read and written with one command per key (HMGET, HSET, ZREM,
ZADD), not one per job: this script runs for every job a worker processes. ]]
local jobs, status, queued, active, attempts = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local now, group, consumer = now_ms(), ARGV[1], ARGV[2]
local remaining, lease = tonumber(ARGV[3]), tonumber(ARGV[4])
local host, pid, maxlen = ARGV[5], tonumber(ARGV[6]), ARGV[7]
local memo, claim_id, suspects_left = KEYS[26], ARGV[8], tonumber(ARGV[9])
local free, resource_wait, wake = parse_resources(ARGV[11]), KEYS[22], KEYS[23]
local limits, limit_due, timers = KEYS[19], KEYS[20], KEYS[21]
local prefix, held, MAX_HELD = limit_prefix(limits), 0, 1000
local claimed, changes, lease_end, errors, deferred, suspects = {}, {}, text(now + lease), {}, 0, {}
local activated = {}  -- the ids of the jobs started (their change of state is one text)

-- The same claim sent again: answer with the jobs it started (those still held).
local previous = ARGV[10] == '1' and rcall('GET', memo)
if previous and previous:sub(1, #claim_id + 1) == claim_id .. ' ' then
  local ids, listed = {}, previous:sub(#claim_id + 2)
  -- the changes to active of its events entry (see below), or ids apart (earlier versions)
  local pattern = listed:sub(1, 1) == '[' and '%["([^"]*)","active"%]' or '%S+'
  for id in string.gmatch(listed, pattern) do ids[#ids + 1] = id end
  local raws, records = hmget_many(status, ids), hmget_many(jobs, ids)
  for k, id in ipairs(ids) do
    local st = raws[k] and read_status(raws[k])
    local n = st and st.s == 'active' and st.t and tonumber(string.match(st.t, '/(%d+)$'))
    if n and st.t == consumer .. '/' .. n then
      claimed[#claimed + 1] = id
      claimed[#claimed + 1] = n
      claimed[#claimed + 1] = records[k] or ''
      claimed[#claimed + 1] = st.u or st.l or 0
      if st.k then suspects[#suspects + 1] = id end
    end
  end
  return {claimed, {}, {}, 0, suspects, 0, 0, 0}
end

if rcall('EXISTS', KEYS[18]) == 1 then return {{}, {}, {}, 0, {}, 1, 0, 0} end

local function dead_letter(band, entry, fields, why)
  local id = 'invalid-' .. entry
  rcall('HSET', jobs, id, cjson.encode({n = '', p = band, c = now, raw = fields}))
  rcall('HSET', status, id, encode_status('failed', 0, band, nil, nil, now, nil,
    'InvalidStreamEntry', why))
  rcall('ZADD', KEYS[7], now, id)
  changes[#changes + 1] = change_json(id, 'failed')
end

-- Whether the job `id`, of controls `line`, is held back by its limits or for resources
-- (then it is listed here; its status stays as it is).
local function held_back(line, id)
  local c = parse_limits(line)
  if not c then return false end
  if not fits(c.r, free) then  -- for a worker with room: resource_wait
    rcall('RPUSH', resource_wait, id)
    rcall('XADD', wake, 'MAXLEN', '~', 16, '*', 'r', id)
    return true
  end
  local go, due = limit_admits(c, prefix, now)
  if go then
    take_resources(c.r, free)
    return false
  end
  limit_hold(c, prefix, id, due, limit_due, timers)
  return true
end

-- What a claim writes is the same for every job of one attempt number and band, and most
-- of its jobs are attempt 1 of one band: each is made once per call (a job whose status
-- holds more, from its earlier attempts, has its own).
local fresh_of, active_of, opening_of, field_of = {}, {}, {}, {}
-- How a status of a job never tried, queued in band b, starts (its entry follows).
local function fresh_status(b)
  local start = mpack('queued', 0, b)
  fresh_of[b] = start
  return start
end
-- The status of attempt n, in band b, of a job whose status holds nothing more.
local function active_status(n, b)
  local st = encode_status('active', n, b, nil, consumer .. '/' .. text(n))
  active_of[n * 10 + b] = st
  return st
end
-- The opening record of attempt n (see encode_attempt).
local function opening(n)
  local record = encode_attempt(n, consumer, host, pid, now)
  opening_of[n] = record
  return record
end
-- The end of the field of attempt n, after its job's id: ':<n>'.
local function attempt_field(n)
  local field = ':' .. text(n)
  field_of[n] = field
  return field
end

-- Start the attempts of the entries read from one band's stream (band nil: held jobs taken
-- from their wait lists, each as an entry '' of no stream).
local function start_band(band, entries)
  local count, ids = #entries, {}
  for k = 1, count do
    local fields = entries[k][2]
    ids[k] = (fields[1] == 'id') and fields[2] or ''  -- '' is never a job id
  end
  local raws, controls = hmget_many(status, ids), limits_of(limits, ids)
  local names, statuses, leases, opened, started, first = {}, {}, {}, {}, 0, #claimed
  local fresh = band and (fresh_of[band] or fresh_status(band))
  if not ints then ints, heads = {}, {} end
  for j = 1, count do
    local item = entries[j]
    local entry, id, raw = item[1], ids[j], raws[j]
    if id == '' then
      dead_letter(band, entry, item[2],
        'stream entry ' .. entry .. ' in band ' .. band .. ' has no job id')
    elseif not raw and entry == '' then  -- a held job, forgotten meanwhile: nothing to start
    elseif not raw then
      dead_letter(band, entry, item[2],
        'stream entry ' .. entry .. ' names job ' .. id .. ', which does not exist')
    else
      local s, a, b, e, t, f, d, x, m, l, u, k, c, kept
      if fresh and raw == fresh .. (heads[#entry] or head(#entry)) .. entry .. NIL .. NIL then
        s, a, b, e = 'queued', 0, band, entry  -- never tried, queued in this band: as written
      else
        s, a, b, e, t, f, d, x, m, l, u, k, c, kept = decode_status(raw)
      end
      -- an entry superseded (its job was cancelled or moved) is left to the trim
      -- (entry '': a held job taken from its wait list, which has no entry)
      local current = s == 'queued' and (e == entry or entry == '')
      if not s then
        fail_corrupt(status, KEYS[7], id, raw, a, now)  -- a: why it cannot be read
        rcall('ZREM', queued, id)
        changes[#changes + 1] = change_json(id, 'failed')
      elseif current and k and suspects_left <= 0 then
        -- a suspect the caller may not take (it holds one): it waits at the end of its band
        e = add_entry(KEYS[8 + b], group, id)
        rcall('HSET', status, id, encode_status(s, a, b, e, t, f, d, x, m, l, u, k, c, kept))
        rcall('ZADD', queued, entry_score(e), id)
        deferred = deferred + 1
      elseif current and controls and controls[j] and held_back(controls[j], id) then
        held = held + 1  -- over a limit: held back (limits.lua)
      elseif current then
        if k then
          suspects_left = suspects_left - 1
          suspects[#suspects + 1] = id
        end
        local n = a + 1
        started = started + 1
        local two = 2 * started
        -- active: the entry is gone (the claim trims it), the lease token added
        statuses[two - 1] = id
        if f or d or x or m or l or u or k or c or kept then
          statuses[two] = encode_status('active', n, b, nil, consumer .. '/' .. text(n), f, d,
            x, m, l, u, k, c, kept)
        else
          statuses[two] = active_of[n * 10 + b] or active_status(n, b)
        end
        leases[two - 1] = lease_end
        leases[two] = id
        opened[two - 1] = id .. (field_of[n] or attempt_field(n))
        opened[two] = opening_of[n] or opening(n)
        names[started] = id
        local at = first + 4 * started  -- its record is read below
        claimed[at - 3], claimed[at - 2], claimed[at - 1], claimed[at] = id, n, false, u or l or 0
        activated[#activated + 1] = id
        if controls and controls[j] then
          limit_take(parse_limits(controls[j]) or {}, prefix, id, n, now)
        end
      end
    end
  end
  if started == 0 then return end
  call_many('HSET', status, statuses)
  call_many('ZADD', active, leases)
  call_many('HSET', attempts, opened)
  call_many('ZREM', queued, names)
  local records = hmget_many(jobs, names)
  for k = 1, started do claimed[first + 4 * k - 1] = records[k] or '' end
end


-- Read and start the entries of one band (up to `remaining`): true when the read was
-- full and held jobs back, so that the band may hold more to claim at once.
local function claim_band(band)
  local stream, asked = KEYS[8 + band], remaining
  -- a stream that cannot be read is reported in `errors`; a consumer group that is missing
  -- (deleted, or lost with a restore) is created again: every entry in a stream is
  -- undelivered, so it reads from the start
  local length, reply = redis.pcall('XLEN', stream), nil
  if type(length) == 'number' and length > 0 then  -- only undelivered entries stay in a stream
    reply = redis.pcall('XREADGROUP', 'GROUP', group, consumer, 'COUNT', asked, 'NOACK',
      'STREAMS', stream, '>')
    if type(reply) == 'table' and reply.err and string.find(reply.err, '^NOGROUP') then
      rcall('XGROUP', 'CREATE', stream, group, '0')
      reply = redis.pcall('XREADGROUP', 'GROUP', group, consumer, 'COUNT', asked, 'NOACK',
        'STREAMS', stream, '>')
    end
  elseif type(length) == 'table' then
    reply = length
  end
  local entries = {}
  if type(reply) == 'table' and reply.err then
    errors[#errors + 1] = stream .. ': ' .. tostring(reply.err)
  elseif reply then
    entries = read_entries(reply)
  end
  if #entries == 0 then return false end
  local held_before = held
  start_band(band, entries)
  local ms, seq = string.match(entries[#entries][1], '^(%d+)-(%d+)$')
  rcall('XTRIM', stream, 'MINID', ms .. '-' .. string.format('%d', tonumber(seq) + 1))
  remaining = remaining - #entries + (held - held_before)
  return held > held_before and #entries == asked
end

-- Start one held job taken from a wait list (its status says its band; a job no longer
-- queued is dropped by start_band).
local function start_held(id)
  local raw = rcall('HGET', status, id)
  local st = raw and read_status(raw)
  if not st then return end
  local before = #claimed
  start_band(st.b, {{'', {'id', id}}})
  remaining = remaining - (#claimed - before) / 4
end

-- How many more jobs of limit key `c` may start now, up to `cap`, and when its rate has
-- room again (nil unless the rate is what holds it).
local function key_room(c, cap)
  local room, due = cap, nil
  if c.max then room = math.min(room, c.max - rcall('SCARD', prefix .. 'active:' .. c.l)) end
  if c.rn then
    local left
    left, due = rate_room(c, prefix, now)
    room = math.min(room, left)
  end
  return room, due
end

-- Start the jobs held back by limit keys that may have room again, as many as their limits
-- admit (oldest first, in one batch per key); a key whose limits hold, or with nobody
-- waiting, is no longer ready (a freed unit or the rate's due time lists it again).
if rcall('EXISTS', KEYS[24]) == 1 then
  for _, l in ipairs(rcall('SRANDMEMBER', KEYS[24], 100)) do
    if remaining <= 0 then break end
    local c, wait = key_limits(KEYS[25], l), prefix .. 'wait:' .. l
    local room = key_room(c, remaining)
    local ids = room > 0 and rcall('LPOP', wait, room)
    if ids then
      local entries, before = {}, #claimed
      for k, id in ipairs(ids) do entries[k] = {'', {'id', id}} end
      start_band(nil, entries)
      remaining = remaining - (#claimed - before) / 4
    end
    -- the key's own room (a claim that ran out of slots leaves a key with room ready)
    local left, due = key_room(c, 1)
    if rcall('LLEN', wait) == 0 or left <= 0 then
      rcall('SREM', KEYS[24], l)
      if due then limit_hold_due(c, due, limit_due, timers) end
    end
  end
end

-- Start the jobs held back for resources that fit the caller now (oldest first).
if rcall('EXISTS', resource_wait) == 1 then
  for _, id in ipairs(rcall('LRANGE', resource_wait, 0, 99)) do
    if remaining <= 0 then break end
    local raw = rcall('HGET', status, id)
    local st = raw and read_status(raw)
    if not (st and st.s == 'queued') then
      rcall('LREM', resource_wait, 1, id)  -- no longer held (cancelled, deleted...)
    elseif fits(parse_resources(string.match(rcall('HGET', limits, id) or '', '([^\t]*)$')), free) then
      rcall('LREM', resource_wait, 1, id)
      start_held(id)
    end
  end
end

for band = 9, 0, -1 do
  while remaining > 0 and held < MAX_HELD and claim_band(band) do end
end
-- the changes to active: in the events entry, and in the claim memo after the claim id
local started = #activated > 0 and changes_to(activated, 'active')
if started then changes[#changes + 1] = started end
emit_json(KEYS[6], maxlen, changes)

if #claimed > 0 then  -- activated: the ids of the claimed jobs
  rcall('SET', memo, claim_id .. ' ' .. started, 'PX', ARGV[4])
elseif #errors > 0 then
  return redis.error_reply('ERR claim could not read ' .. table.concat(errors, '; '))
end

local newest = {}
if #claimed == 0 then
  for band = 0, 9 do
    local last = rcall('XREVRANGE', KEYS[8 + band], '+', '-', 'COUNT', 1)
    newest[band + 1] = last[1] and last[1][1] or '0-0'
  end
  local last = rcall('XREVRANGE', wake, '+', '-', 'COUNT', 1)
  newest[11] = last[1] and last[1][1] or '0-0'
end
return {claimed, newest, errors, deferred, suspects, 0, held >= MAX_HELD and 1 or 0, held}
