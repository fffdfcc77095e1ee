--[[ Record the end of attempts whose lease the caller still holds, then prune old jobs.
KEYS[1] jobs  KEYS[2] status  KEYS[3] active  KEYS[4] scheduled  KEYS[5] attempts
KEYS[6] logs  KEYS[7] progress  KEYS[8] results  KEYS[9] result_expiry  KEYS[10] events
KEYS[11] timers  KEYS[12] succeeded  KEYS[13] failed  KEYS[14] cancelled
KEYS[15..24] streams of bands 0..9
ARGV[1] consumer group  ARGV[2] retention (ms)  ARGV[3] events maxlen
ARGV[4..] per job, either five values for a success: 'S', id, lease token, result
  (msgpack), result ttl ms (-1: kept as long as the job); or nine for any other end: 'E', id,
  lease token, attempt outcome, next state (failed|cancelled|scheduled), delay ms (for
  scheduled), error type, error message, traceback
Returns: one integer per job, 1 when recorded, 0 when the lease was no longer held
(the attempt was taken over; nothing is written for it). ]]
local jobs, status, active, scheduled, attempts = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local results, result_expiry = KEYS[8], KEYS[9]
local now, group, retention, maxlen = now_ms(), ARGV[1], tonumber(ARGV[2]), ARGV[3]
local index = {succeeded = KEYS[12], failed = KEYS[13], cancelled = KEYS[14]}
local out, changes = {}, {}

local i = 4
while i <= #ARGV do
  local id, token = ARGV[i + 1], ARGV[i + 2]
  local outcome, next_state, delay, result, ttl = 'succeeded', 'succeeded', 0, nil, -1
  local etype, emsg, tb = '', '', ''
  if ARGV[i] == 'S' then
    result, ttl = ARGV[i + 3], tonumber(ARGV[i + 4])
    i = i + 5
  else
    outcome, next_state, delay = ARGV[i + 3], ARGV[i + 4], tonumber(ARGV[i + 5])
    etype, emsg, tb = ARGV[i + 6], ARGV[i + 7], ARGV[i + 8]
    i = i + 9
  end
  local raw = rcall('HGET', status, id)
  local st = raw and cjson.decode(raw)
  if not st or st.t ~= token then
    out[#out + 1] = 0
  else
    if st.c and next_state == 'scheduled' then next_state = 'cancelled' end  -- no retry
    drop_entry(KEYS[15 + st.b], group, st.e)
    rcall('ZREM', active, id)
    close_attempt(attempts, id .. ':' .. st.a, st.a, now, outcome, etype, emsg, tb)
    st.t, st.e, st.s = nil, nil, next_state
    if etype ~= '' then st.x, st.m = etype, emsg else st.x, st.m = nil, nil end
    if next_state == 'scheduled' then
      st.d = now + delay
      schedule(scheduled, KEYS[11], id, st.d)
    else
      st.f = now
      rcall('ZADD', index[next_state], now, id)
      if next_state == 'succeeded' then
        rcall('HSET', results, id, result)
        if ttl >= 0 then rcall('ZADD', result_expiry, now + ttl, id) end
      end
    end
    rcall('HSET', status, id, cjson.encode(st))
    changes[#changes + 1] = {id, next_state}
    out[#out + 1] = 1
  end
end
emit(KEYS[10], maxlen, changes)

prune({jobs = jobs, status = status, attempts = attempts, logs = KEYS[6], progress = KEYS[7],
  results = results, result_expiry = result_expiry,
  finished = {KEYS[12], KEYS[13], KEYS[14]}}, now, retention, math.max(100, 2 * #out))
return out
