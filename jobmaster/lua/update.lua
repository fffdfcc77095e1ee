--[[ Change the arguments and/or priority of a job that has not started.
KEYS[1] jobs  KEYS[2] status  KEYS[3] events  KEYS[4..13] streams of bands 0..9
ARGV[1] job id  ARGV[2] new job record (msgpack, already validated) or ''
ARGV[3] new band or -1  ARGV[4] consumer group  ARGV[5] events maxlen
Returns: the job's state when updated ('queued' or 'scheduled'), or its state when it can
no longer be changed ('active', 'succeeded', 'failed', 'cancelled'), or 'missing'. ]]
local jobs, status = KEYS[1], KEYS[2]
local id, record, band, group, maxlen = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4], ARGV[5]
local raw = rcall('HGET', status, id)
if not raw then return 'missing' end
local st = must_read_status(raw, id)
if st.s ~= 'queued' and st.s ~= 'scheduled' then return st.s end
if record ~= '' then rcall('HSET', jobs, id, record) end
if band >= 0 and band ~= st.b then
  if st.s == 'queued' then  -- move its entry to the stream of its new band
    if st.e then rcall('XDEL', KEYS[4 + st.b], st.e) end
    st.e = add_entry(KEYS[4 + band], group, id)
  end
  st.b = band
end
rcall('HSET', status, id, status_text(st))
emit(KEYS[3], maxlen, {{id, st.s}})
return st.s
