--[[ Run a failed or cancelled job again: a new attempt on the same job, its history kept.
KEYS[1] status  KEYS[2] queued  KEYS[3] failed  KEYS[4] cancelled  KEYS[5] events
KEYS[6..15] streams of bands 0..9
ARGV[1] job id  ARGV[2] consumer group  ARGV[3] events maxlen
Returns: 'queued', or 'refused:<state>' when it is neither failed nor cancelled, or
'missing'. ]]
local status, queued = KEYS[1], KEYS[2]
local id, group, maxlen = ARGV[1], ARGV[2], ARGV[3]
local raw = rcall('HGET', status, id)
if not raw then return 'missing' end
local st = must_read_status(raw, id)
if st.s ~= 'failed' and st.s ~= 'cancelled' then return 'refused:' .. st.s end
rcall('ZREM', st.s == 'failed' and KEYS[3] or KEYS[4], id)
local now = now_ms()
st.s, st.f, st.x, st.m, st.c, st.l = 'queued', nil, nil, nil, nil, nil
st.u, st.k, st.raw = nil, nil, nil
st.e = add_entry(KEYS[6 + st.b], group, id)
rcall('ZADD', queued, now, id)
rcall('HSET', status, id, status_text(st))
emit(KEYS[5], maxlen, {{id, 'queued'}})
return 'queued'
