--[[ Take back jobs whose lease expired (their worker died, hung or lost Redis).
Each lost attempt is closed as 'lost'; the job goes back to its queue, or ends 'failed'
once its attempts were lost MAX_LOST times (a poison job that kills its worker).
Atomic: an expired lease is taken by exactly one caller, and a worker that renews in time
keeps its job.
Who is to blame: the jobs a dead worker held are taken back together (the same lease
holder, in this call). A job lost alone, or a suspect lost with others, counts a loss (field
`l`, towards MAX_LOST); a job that is not a suspect and was lost beside others counts none.
Every job taken back becomes a suspect (field `k`): claim.lua gives a worker at most one
suspect at a time, so a job that kills its worker takes no other suspect down with it, and
dies again beside no other suspect: only it counts its losses, and the jobs lost with it
once run apart from it. An attempt that ends (finish.lua) clears the suspicion.
A job whose status cannot be read is failed (CorruptStatus) and the others are taken back.
KEYS[1] status  KEYS[2] active  KEYS[3] queued  KEYS[4] attempts  KEYS[5] events
KEYS[6] failed  KEYS[7..16] streams of bands 0..9  KEYS[17] cancelled  KEYS[18] limits
KEYS[19] unique  KEYS[20] limit_keys (and the keys of the queue's limits: see limits.lua)
ARGV[1] consumer group  ARGV[2] max lost attempts  ARGV[3] limit  ARGV[4] events maxlen
A job with limits frees its unit once its lease expired, never before; and a few limit
keys chosen at random are checked for units held by jobs no longer running (freed then).
Returns: {requeued ids, failed ids, ms until the next lease expires (-1 when none)} ]]
local status, active, queued, attempts = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local group, max_lost, limit, maxlen = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4]
local now = now_ms()
local requeued, failed, changes, back = {}, {}, {}, {}
local expired = rcall('ZRANGEBYSCORE', active, '-inf', now, 'LIMIT', 0, limit)

-- the jobs to take back, and how many each lease holder lost (suspects among them apart)
local lost, held, suspects = {}, {}, {}
for _, id in ipairs(expired) do
  rcall('ZREM', active, id)
  local raw = rcall('HGET', status, id)
  local st, why = nil, nil
  if raw then st, why = read_status(raw) end
  if raw and not st then
    fail_corrupt(status, KEYS[6], id, raw, why, now)
    failed[#failed + 1] = id
    changes[#changes + 1] = {id, 'failed'}
    back[#back + 1] = {id, true}
  elseif st and st.s == 'active' then
    local holder = st.t and string.match(st.t, '^(.*)/%d+$') or ''
    lost[#lost + 1] = {id, st, holder}
    held[holder] = (held[holder] or 0) + 1
    if st.k then suspects[holder] = (suspects[holder] or 0) + 1 end
  end
end

for _, job in ipairs(lost) do
  local id, st, holder = job[1], job[2], job[3]
  local stream = KEYS[7 + st.b]
  close_attempt(attempts, id .. ':' .. st.a, now, 'lost', 'LeaseExpired',
    'the worker holding this attempt stopped renewing its lease', '')
  if held[holder] == 1 or st.k then st.l = (st.l or 0) + 1 end
  st.u = (st.u or st.l or 0) + 1  -- attempts that do not count as tries
  st.t, st.k = nil, 1
  if st.c then  -- its cancellation was requested: it is not run again
    st.s, st.e, st.f, st.x, st.m = 'cancelled', nil, now, 'Cancelled', 'cancelled while running'
    rcall('ZADD', KEYS[17], now, id)
  elseif (st.l or 0) >= max_lost then
    st.s, st.e, st.f = 'failed', nil, now
    st.x = 'TooManyLostAttempts'
    st.m = 'attempts were lost ' .. st.l .. ' times (their workers died or stalled); '
      .. 'the job may be killing its worker'
    rcall('ZADD', KEYS[6], now, id)
    failed[#failed + 1] = id
  else
    st.s = 'queued'
    st.e = add_entry(stream, group, id)
    rcall('ZADD', queued, now, id)
    requeued[#requeued + 1] = id
  end
  rcall('HSET', status, id, status_text(st))
  changes[#changes + 1] = {id, st.s}
  back[#back + 1] = {id, st.s ~= 'queued'}
end
emit(KEYS[5], maxlen, changes)
if #back > 0 and rcall('EXISTS', related_of(status)) == 1 then  -- see relations.lua
  local ended = {}
  for _, c in ipairs(changes) do
    if c[2] == 'failed' or c[2] == 'cancelled' then ended[#ended + 1] = c end
  end
  relations_ended(status, ended, now, maxlen)
end
free_units(KEYS[18], KEYS[19], back)
sweep_units(KEYS[18], KEYS[20], status, 10)
local first = rcall('ZRANGE', active, 0, 0, 'WITHSCORES')
return {requeued, failed, first[2] and math.max(0, tonumber(first[2]) - now) or -1}
