--[[ Take back jobs whose lease expired (their worker died, hung or lost Redis).
Each lost attempt is closed as 'lost'; the job goes back to its queue, or ends 'failed'
once its attempts were lost MAX_LOST times (a poison job that kills its worker).
Atomic: an expired lease is taken by exactly one caller, and a worker that renews in time
keeps its job.
KEYS[1] status  KEYS[2] active  KEYS[3] queued  KEYS[4] attempts  KEYS[5] events
KEYS[6] failed  KEYS[7..16] streams of bands 0..9  KEYS[17] cancelled
ARGV[1] consumer group  ARGV[2] max lost attempts  ARGV[3] limit  ARGV[4] events maxlen
Returns: {requeued ids, failed ids, ms until the next lease expires (-1 when none)} ]]
local status, active, queued, attempts = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local group, max_lost, limit, maxlen = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4]
local now = now_ms()
local requeued, failed, changes = {}, {}, {}
local expired = rcall('ZRANGEBYSCORE', active, '-inf', now, 'LIMIT', 0, limit)
for _, id in ipairs(expired) do
  rcall('ZREM', active, id)
  local raw = rcall('HGET', status, id)
  local st = raw and cjson.decode(raw)
  if st and st.s == 'active' then
    local stream = KEYS[7 + st.b]
    close_attempt(attempts, id .. ':' .. st.a, st.a, now, 'lost', 'LeaseExpired',
      'the worker holding this attempt stopped renewing its lease', '')
    st.l = (st.l or 0) + 1
    st.t = nil
    if st.c then  -- its cancellation was requested: it is not run again
      st.s, st.e, st.f, st.x, st.m = 'cancelled', nil, now, 'Cancelled', 'cancelled while running'
      rcall('ZADD', KEYS[17], now, id)
    elseif st.l >= max_lost then
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
    rcall('HSET', status, id, cjson.encode(st))
    changes[#changes + 1] = {id, st.s}
  end
end
emit(KEYS[5], maxlen, changes)
local first = rcall('ZRANGE', active, 0, 0, 'WITHSCORES')
return {requeued, failed, first[2] and math.max(0, tonumber(first[2]) - now) or -1}
