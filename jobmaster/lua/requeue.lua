--[[ Hand running jobs back to their queue at once (a worker shutting down).
KEYS[1] status  KEYS[2] active  KEYS[3] queued  KEYS[4] attempts  KEYS[5] events
KEYS[6..15] streams of bands 0..9  KEYS[16] cancelled  KEYS[17] limits  KEYS[18] unique
(and the keys of the queue's limits, named after KEYS[17]: see limits.lua)
ARGV[1] consumer group  ARGV[2] reason  ARGV[3] events maxlen
ARGV[4..] two values per job: id, lease token
Each attempt is closed as 'lost' with the reason; the job gets a new stream entry. A hand-
back does not count as a try of the retry policy (field `u`) nor as a loss (`l`). Runs even
when Redis is full (see write_even_when_full).
Returns: one integer per job, 1 when handed back, 0 when the lease was no longer held (or
the job's status could not be read: the reclaim fails such a job when its lease expires).
A job with limits frees its unit (limits.lua). ]]
local status, active, queued, attempts = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local now, group, reason, maxlen = now_ms(), ARGV[1], ARGV[2], ARGV[3]
local out, changes, back = {}, {}, {}
write_even_when_full(status)
for i = 4, #ARGV, 2 do
  local id, token = ARGV[i], ARGV[i + 1]
  local raw = rcall('HGET', status, id)
  local st = raw and read_status(raw)
  if not st or st.t ~= token then
    out[#out + 1] = 0
  else
    local stream = KEYS[6 + st.b]
    close_attempt(attempts, id .. ':' .. st.a, st.a, now, 'lost', 'WorkerShutdown', reason, '')
    st.t = nil
    st.u = (st.u or st.l or 0) + 1  -- attempts that do not count as tries
    rcall('ZREM', active, id)
    if st.c then  -- its cancellation was requested: it is not run again
      st.s, st.e, st.f, st.x, st.m = 'cancelled', nil, now, 'Cancelled', 'cancelled while running'
      rcall('ZADD', KEYS[16], now, id)
    else
      st.s = 'queued'
      st.e = add_entry(stream, group, id)
      rcall('ZADD', queued, now, id)
    end
    rcall('HSET', status, id, cjson.encode(st))
    changes[#changes + 1] = {id, st.s}
    back[#back + 1] = {id, st.s == 'cancelled'}
    out[#out + 1] = 1
  end
end
emit(KEYS[5], maxlen, changes)
free_units(KEYS[17], KEYS[18], back)
return out
