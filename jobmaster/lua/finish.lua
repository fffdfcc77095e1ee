--[[ Record the end of attempts whose lease the caller still holds, then prune old jobs
(even when Redis is full: see write_even_when_full).
KEYS[1] jobs  KEYS[2] status  KEYS[3] active  KEYS[4] scheduled  KEYS[5] attempts
KEYS[6] logs  KEYS[7] progress  KEYS[8] results  KEYS[9] result_expiry  KEYS[10] events
KEYS[11] timers  KEYS[12] succeeded  KEYS[13] failed  KEYS[14] cancelled
KEYS[15] webhook_due  KEYS[16] webhook_deliveries  KEYS[17] limits  KEYS[18] unique (and the
keys of the queue's limits, named after KEYS[17]: see limits.lua)
ARGV[1] retention (ms)  ARGV[2] events maxlen
ARGV[3..] per job, either five values for a success: 'S', id, lease token, result
  (msgpack), result ttl ms (-1: kept as long as the job); or nine for any other end: 'E', id,
  lease token, attempt outcome, next state (failed|cancelled|scheduled), delay ms (for
  scheduled), error type, error message, traceback
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

-- where each end's values start in ARGV (no table per end: this runs for every job)
local starts, ids = {}, {}
local i, argc = 3, #ARGV
while i <= argc and ARGV[i] ~= 'W' do
  starts[#starts + 1] = i
  ids[#ids + 1] = ARGV[i + 1]
  i = i + (ARGV[i] == 'S' and 5 or 9)
end

-- the ends whose lease is held (a job named twice counts once), what their statuses hold
-- (attempts and band; the other fields, which the hot path has none of, in `rare`) and
-- the fields of their attempts' end records (written without reading the opening ones)
local out, held, attempts_of, bands, rare, fields, seen, corrupt = {}, {}, {}, {}, {}, {}, {}, {}
local raws = hmget_many(status, ids)
for k, p in ipairs(starts) do
  local raw, id = raws[k], ids[k]
  local s, a, b, e, t, f, d, x, m, l, u, suspect, c, kept
  if raw then s, a, b, e, t, f, d, x, m, l, u, suspect, c, kept = decode_status(raw) end
  if raw and not s then
    out[k] = 2
    if not seen[id] then
      seen[id] = true
      corrupt[#corrupt + 1] = id
      fail_corrupt(status, KEYS[13], id, raw, a, now)  -- a: why it cannot be read
    end
  elseif not s or t ~= ARGV[p + 2] or seen[id] then
    out[k] = 0
    -- written already (the same call sent again after its reply was lost): the attempt the
    -- token names was closed by its worker with this outcome
    local worker, n = match(ARGV[p + 2], '^(.*)/(%d+)$')
    if s and not seen[id] and s ~= 'active' and a == tonumber(n) then
      local field = id .. ':' .. n
      local ends = rcall('HMGET', attempts, field, field .. ':end')
      local number, w = decode_attempt(ends[1] or '')
      local _, o = decode_attempt_end(ends[2] or '')
      local outcome = ARGV[p] == 'S' and 'succeeded' or ARGV[p + 3]
      if number and w == worker and o == outcome then out[k] = 1 end
    end
  else
    out[k] = 1
    seen[id] = true
    held[#held + 1] = p
    attempts_of[#held], bands[#held] = a, b
    if f or d or x or m or l or u or c or kept then rare[#held] = {f, d, x, m, l, u, c, kept} end
    fields[#held] = id .. ':' .. text(a) .. ':end'
  end
end

local index = {succeeded = {}, failed = {}, cancelled = {}}
local unleased, closed, statuses, stored, expiries, changes = {}, {}, {}, {}, {}, {}
local finals = {}
for k, p in ipairs(held) do
  local id = ARGV[p + 1]
  local a, b, f, d, x, m, l, u, c, kept = attempts_of[k], bands[k], nil, nil, nil, nil, nil,
    nil, nil, nil
  if rare[k] then f, d, x, m, l, u, c, kept = unpack(rare[k], 1, 8) end
  local outcome, next_state, delay, etype, emsg, tb = 'succeeded', 'succeeded', 0, '', '', ''
  local result, ttl = nil, '-1'
  if ARGV[p] == 'S' then
    result, ttl = ARGV[p + 3], ARGV[p + 4]
  else
    outcome, next_state, delay = ARGV[p + 3], ARGV[p + 4], tonumber(ARGV[p + 5])
    etype, emsg, tb = ARGV[p + 6], ARGV[p + 7], ARGV[p + 8]
  end
  if c and next_state == 'scheduled' then next_state = 'cancelled' end  -- no retry
  unleased[k] = id
  closed[#closed + 1] = fields[k]
  closed[#closed + 1] = attempt_end(now, outcome, etype, emsg, tb)
  if outcome == 'rate_limited' then u = (u or l or 0) + 1 end  -- not a try
  if etype ~= '' then x, m = etype, emsg else x, m = nil, nil end
  if next_state == 'scheduled' then
    d = now + delay
    schedule(scheduled, KEYS[11], id, d)
  else
    f = now
    local list = index[next_state]
    list[#list + 1] = now_text
    list[#list + 1] = id
    if next_state == 'succeeded' then
      stored[#stored + 1] = id
      stored[#stored + 1] = result
      if ttl ~= '-1' and tonumber(ttl) >= 0 then  -- '-1' (kept with the job) first
        expiries[#expiries + 1] = text(now + tonumber(ttl))
        expiries[#expiries + 1] = id
      end
    end
  end
  finals[k] = next_state ~= 'scheduled' and next_state  -- the final state, or false
  -- the attempt ended: no lease token or stream entry, and no suspicion
  statuses[#statuses + 1] = id
  statuses[#statuses + 1] = encode_status(next_state, a, b, nil, nil, f, d, x, m, l, u, nil,
    c, kept)
  changes[#changes + 1] = change_json(id, next_state)
end
for _, id in ipairs(corrupt) do
  unleased[#unleased + 1] = id
  finals[#unleased] = 'failed'
  changes[#changes + 1] = change_json(id, 'failed')
end
call_many('ZREM', active, unleased)
call_many('HSET', attempts, closed)
call_many('HSET', status, statuses)
call_many('ZADD', KEYS[12], index.succeeded)
call_many('ZADD', KEYS[13], index.failed)
call_many('ZADD', KEYS[14], index.cancelled)
call_many('HSET', results, stored)
call_many('ZADD', result_expiry, expiries)
emit_json(KEYS[10], maxlen, changes)
write_outbox(KEYS[15], KEYS[16], held, i)

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
