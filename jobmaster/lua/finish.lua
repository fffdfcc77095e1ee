--[[ Record the end of attempts whose lease the caller still holds, then prune old jobs
(even when Redis is full: see write_even_when_full).
KEYS[1] jobs  KEYS[2] status  KEYS[3] active  KEYS[4] scheduled  KEYS[5] attempts
KEYS[6] logs  KEYS[7] progress  KEYS[8] results  KEYS[9] result_expiry  KEYS[10] events
KEYS[11] timers  KEYS[12] succeeded  KEYS[13] failed  KEYS[14] cancelled
KEYS[15] webhook_due  KEYS[16] webhook_deliveries  KEYS[17] limits  KEYS[18] unique (and the
keys of the queue's limits, named after KEYS[17]: see limits.lua)
ARGV[1] retention (ms)  ARGV[2] events maxlen
ARGV[3..] the ends: runs of successes, each 'S', how many, their results' ttl ms (-1: kept
  as long as the job), then three values per success: id, lease token, result (msgpack);
  and any other end as nine values: 'E', id, lease token, attempt outcome, next state
  (failed|cancelled|scheduled), delay ms (for scheduled), error type, error message,
  traceback
then, optionally, the webhook deliveries of these ends: 'W' and four values per delivery
  (see webhook_outbox.lua), written with the ends they are for
Returns: one integer per job, 1 when recorded (or recorded already: the same end sent
again, its first reply lost), 0 when the lease was no longer held (the attempt was taken
over; nothing is written for it), 2 when the job's status could not be read (the job is
failed with error type CorruptStatus; the attempt's end is not written).
The job's stream entry is gone already: the claim read it with NOACK and trimmed it.
The jobs are read and written with one command per key (HMGET, HSET, ZADD...), not one per
job: this script runs for every job a worker processes.
An attempt of a job with limits frees its unit (and lets one job its limit held back go);
a job with a unique key that reached a final state frees the key; a job that reached a final
state is news for the jobs that wait on it and for its group (relations.lua). ]]
local jobs, status, active, scheduled, attempts = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local results, result_expiry = KEYS[8], KEYS[9]
local now, retention, maxlen = now_ms(), tonumber(ARGV[1]), ARGV[2]
local now_text = text(now)
write_even_when_full(status)  -- a full Redis must not fail work that was done

-- where each end's values start in ARGV (at its job id), and the ttl of a success's result
-- (false for another end); no table per end: this runs for every job
local starts, ids, ttls, count = {}, {}, {}, 0
local i, argc = 3, #ARGV
while i <= argc and ARGV[i] ~= 'W' do
  if ARGV[i] == 'S' then
    local ttl, last = ARGV[i + 2], i + 3 * tonumber(ARGV[i + 1])
    for q = i + 3, last, 3 do
      count = count + 1
      starts[count], ids[count], ttls[count] = q, ARGV[q], ttl
    end
    i = last + 3
  else
    count = count + 1
    starts[count], ids[count], ttls[count] = i + 1, ARGV[i + 1], false
    i = i + 9
  end
end
local outbox = ARGV[i] == 'W' and {}  -- the state each recorded end is for (webhooks)

-- Each status is decoded once per distinct record (the statuses of one worker's jobs are
-- mostly the same bytes: attempt 1 of a band, its token), and so is the record a success
-- writes after it: most jobs of a call cost a lookup, not a decoding and an encoding.
-- known[raw] = {s, a, b, e, t, f, d, x, m, l, u, k, c, kept} (or {nil, why})
local known, succeeded_after = {}, {}
local function decoded(raw)
  local st = {decode_status(raw)}
  known[raw] = st
  return st
end
-- The status a success writes after the status `st` (its attempt ended: no lease token or
-- stream entry, no suspicion, no error; its other fields kept).
local function success_status(st)
  local after = encode_status('succeeded', st[2], st[3], nil, nil, now, st[7], nil, nil, st[10],
    st[11], nil, st[13], st[14])
  succeeded_after[st] = after
  return after
end
-- the field of an attempt's end record, after the job id: ':<n>:end'
local end_fields = {}
local function end_field(n)
  local field = ':' .. text(n) .. ':end'
  end_fields[n] = field
  return field
end
local success_end = nil  -- the end record of a success (the same for every one)

-- The ends whose lease is held (a job named twice counts once) are recorded: their attempts'
-- end records (written without reading the opening ones), statuses, indexes and results.
local out, nheld, seen, corrupt = {}, 0, {}, {}
local index = {succeeded = {}, failed = {}, cancelled = {}}
local counts = {succeeded = 0, failed = 0, cancelled = 0}
local unleased, closed, statuses, stored, expiries = {}, {}, {}, {}, {}
local nclosed, nstatuses, nstored = 0, 0, 0
local finals, ended_to = {}, {}  -- ended_to[state]: the ids that moved to it
local raws = hmget_many(status, ids)
for k = 1, count do
  local q, raw, id, ttl = starts[k], raws[k], ids[k], ttls[k]
  local st = raw and (known[raw] or decoded(raw))
  if st and not st[1] then
    out[k] = 2
    if not seen[id] then
      seen[id] = true
      corrupt[#corrupt + 1] = id
      fail_corrupt(status, KEYS[13], id, raw, st[2], now)  -- st[2]: why it cannot be read
    end
  elseif not st or st[5] ~= ARGV[q + 1] or seen[id] then
    out[k] = 0
    -- written already (the same call sent again after its reply was lost): the attempt the
    -- token names was closed by its worker with this outcome
    local worker, n = match(ARGV[q + 1], '^(.*)/(%d+)$')
    if st and not seen[id] and st[1] ~= 'active' and st[2] == tonumber(n) then
      local field = id .. ':' .. n
      local ends = rcall('HMGET', attempts, field, field .. ':end')
      local number, w = decode_attempt(ends[1] or '')
      local _, o = decode_attempt_end(ends[2] or '')
      local outcome = ttl and 'succeeded' or ARGV[q + 2]
      if number and w == worker and o == outcome then out[k] = 1 end
    end
  else
    out[k] = 1
    seen[id] = true
    nheld = nheld + 1
    unleased[nheld] = id
    local a = st[2]
    nclosed = nclosed + 2
    closed[nclosed - 1] = id .. (end_fields[a] or end_field(a))
    local next_state
    if ttl then  -- a success: the hot path
      next_state = 'succeeded'
      success_end = success_end or attempt_end(now, 'succeeded', '', '', '')
      closed[nclosed] = success_end
      nstatuses = nstatuses + 2
      statuses[nstatuses - 1] = id
      statuses[nstatuses] = succeeded_after[st] or success_status(st)
      nstored = nstored + 2
      stored[nstored - 1] = id
      stored[nstored] = ARGV[q + 2]
      if ttl ~= '-1' and tonumber(ttl) >= 0 then  -- '-1' (kept with the job) first
        expiries[#expiries + 1] = text(now + tonumber(ttl))
        expiries[#expiries + 1] = id
      end
    else
      local b, f, d, x, m, l, u, c, kept = st[3], st[6], st[7], st[8], st[9], st[10], st[11],
        st[13], st[14]
      local outcome, delay = ARGV[q + 2], tonumber(ARGV[q + 4])
      local etype, emsg, tb = ARGV[q + 5], ARGV[q + 6], ARGV[q + 7]
      next_state = ARGV[q + 3]
      if c and next_state == 'scheduled' then next_state = 'cancelled' end  -- no retry
      closed[nclosed] = attempt_end(now, outcome, etype, emsg, tb)
      if outcome == 'rate_limited' then u = (u or l or 0) + 1 end  -- not a try
      if etype ~= '' then x, m = etype, emsg else x, m = nil, nil end
      if next_state == 'scheduled' then
        d = now + delay
        schedule(scheduled, KEYS[11], id, d)
      else
        f = now
      end
      -- the attempt ended: no lease token or stream entry, and no suspicion
      nstatuses = nstatuses + 2
      statuses[nstatuses - 1] = id
      statuses[nstatuses] = encode_status(next_state, a, b, nil, nil, f, d, x, m, l, u, nil, c,
        kept)
    end
    if next_state ~= 'scheduled' then
      local n = counts[next_state] + 2
      counts[next_state] = n
      local list = index[next_state]
      list[n - 1] = now_text
      list[n] = id
    end
    finals[nheld] = next_state ~= 'scheduled' and next_state  -- the final state, or false
    if outbox then outbox[id] = next_state end
    local to = ended_to[next_state]
    if not to then
      to = {}
      ended_to[next_state] = to
    end
    to[#to + 1] = id
  end
end
for _, id in ipairs(corrupt) do
  unleased[#unleased + 1] = id
  finals[#unleased] = 'failed'
end
if #corrupt > 0 then
  local to = ended_to.failed or {}
  for _, id in ipairs(corrupt) do to[#to + 1] = id end
  ended_to.failed = to
end
local changes = {}
for state, to in pairs(ended_to) do changes[#changes + 1] = changes_to(to, state) end
call_many('ZREM', active, unleased)
call_many('HSET', attempts, closed)
call_many('HSET', status, statuses)
call_many('ZADD', KEYS[12], index.succeeded)
call_many('ZADD', KEYS[13], index.failed)
call_many('ZADD', KEYS[14], index.cancelled)
call_many('HSET', results, stored)
call_many('ZADD', result_expiry, expiries)
emit_json(KEYS[10], maxlen, changes)
if outbox then write_outbox(KEYS[15], KEYS[16], outbox, i) end

local controls = #unleased > 0 and limits_of(KEYS[17], unleased)
if controls then  -- units and unique keys of jobs with limits (limits.lua)
  for k, id in ipairs(unleased) do
    local c = parse_limits(controls[k])
    if c then
      limit_free(c, KEYS[17], id)
      if finals[k] then unique_free(c, KEYS[18], id) end
    end
  end
end

if #unleased > 0 and rcall('EXISTS', related_of(status)) == 1 then  -- relations.lua
  local ended = {}
  for k, id in ipairs(unleased) do
    if finals[k] then ended[#ended + 1] = {id, finals[k]} end
  end
  relations_ended(status, ended, now, maxlen)
end

prune({jobs = jobs, status = status, attempts = attempts, logs = KEYS[6], progress = KEYS[7],
  results = results, result_expiry = result_expiry, limits = KEYS[17],
  finished = {KEYS[12], KEYS[13], KEYS[14]}}, now, retention, math.max(100, 2 * #out))
return out
