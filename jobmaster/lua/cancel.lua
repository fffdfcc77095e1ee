--[[ Cancel a job. Atomic with respect to a worker claiming it: the answer says which came
first.
KEYS[1] status  KEYS[2] queued  KEYS[3] scheduled  KEYS[4] cancelled  KEYS[5] events
KEYS[6] control  KEYS[7..16] streams of bands 0..9  KEYS[17] limits  KEYS[18] unique
ARGV[1] job id  ARGV[2] reason  ARGV[3] events maxlen
A blocked job (waiting on others) can be cancelled too. Its end is news for the jobs that
wait on it and for its group (relations.lua).
Returns: 'cancelled' (it will never run), 'requested' (an attempt is running: its worker is
told through the control stream), 'finished:<state>' when it had already finished, or
'missing'. ]]
local status, queued, scheduled = KEYS[1], KEYS[2], KEYS[3]
local id, reason, maxlen = ARGV[1], ARGV[2], ARGV[3]
local raw = rcall('HGET', status, id)
if not raw then return 'missing' end
local st = must_read_status(raw, id)
local now = now_ms()
if st.s == 'active' then
  st.c = 1
  rcall('HSET', status, id, status_text(st))
  rcall('XADD', KEYS[6], 'MAXLEN', '~', 1000, '*', 'id', id, 't', st.t)
  return 'requested'
end
if st.s ~= 'queued' and st.s ~= 'scheduled' and st.s ~= 'blocked' then
  return 'finished:' .. st.s
end
if st.s == 'queued' then
  local stream = KEYS[7 + st.b]
  if st.e then rcall('XDEL', stream, st.e) end  -- never delivered: nothing to acknowledge
  rcall('ZREM', queued, id)
elseif st.s == 'blocked' then
  rcall('ZREM', sub(status, 1, -7) .. 'blocked', id)  -- see relations.lua
else
  rcall('ZREM', scheduled, id)
end
st.s, st.e, st.d, st.f = 'cancelled', nil, nil, now
st.x, st.m = 'Cancelled', reason
rcall('HSET', status, id, status_text(st))
rcall('ZADD', KEYS[4], now, id)
emit(KEYS[5], maxlen, {{id, 'cancelled'}})
unique_free(parse_limits(rcall('HGET', KEYS[17], id)), KEYS[18], id)  -- see limits.lua
relations_ended(status, {{id, 'cancelled'}}, now, maxlen)  -- see relations.lua
return 'cancelled'
