--[[ Move a job that has not started to another time (or to now). Atomic with respect to
promotion and claims: a job already claimed is not moved.
KEYS[1] status  KEYS[2] queued  KEYS[3] scheduled  KEYS[4] events  KEYS[5] timers
KEYS[6..15] streams of bands 0..9
ARGV[1] job id  ARGV[2] delay ms from now (0 = now)  ARGV[3] consumer group
ARGV[4] events maxlen
Returns: the job's state after the move ('scheduled' or 'queued'), or its state when it
cannot be moved ('active', 'succeeded', 'failed', 'cancelled'), or 'missing'. ]]
local status, queued, scheduled = KEYS[1], KEYS[2], KEYS[3]
local id, delay, group, maxlen = ARGV[1], tonumber(ARGV[2]), ARGV[3], ARGV[4]
local raw = rcall('HGET', status, id)
if not raw then return 'missing' end
local st = must_read_status(raw, id)
if st.s ~= 'queued' and st.s ~= 'scheduled' then return st.s end
local now = now_ms()
local stream = KEYS[6 + st.b]
if st.s == 'queued' then
  if delay <= 0 then return 'queued' end  -- already runnable
  if st.e then rcall('XDEL', stream, st.e) end
  rcall('ZREM', queued, id)
  st.e = nil
else
  rcall('ZREM', scheduled, id)
end
if delay > 0 then
  st.s, st.d = 'scheduled', now + delay
  schedule(scheduled, KEYS[5], id, st.d)
else
  st.s, st.d = 'queued', nil
  st.e = add_entry(stream, group, id)
  rcall('ZADD', queued, now, id)
end
rcall('HSET', status, id, status_text(st))
emit(KEYS[4], maxlen, {{id, st.s}})
return st.s
