--[[ Move scheduled jobs that are due into their band's stream.
KEYS[1] status  KEYS[2] scheduled  KEYS[3] queued  KEYS[4] events  KEYS[5] timers
KEYS[6..15] streams of bands 0..9  KEYS[16] failed
ARGV[1] limit  ARGV[2] consumer group  ARGV[3] events maxlen
Returns: {promoted, ms until the next due job (-1 when none), newest timers entry id
('0-0' when none)}
A job whose status cannot be read is failed (CorruptStatus); the others are promoted. ]]
local status, scheduled, queued = KEYS[1], KEYS[2], KEYS[3]
local now, limit, group, maxlen = now_ms(), tonumber(ARGV[1]), ARGV[2], ARGV[3]
local changes = {}
local due = rcall('ZRANGEBYSCORE', scheduled, '-inf', now, 'LIMIT', 0, limit)
for _, id in ipairs(due) do
  rcall('ZREM', scheduled, id)
  local raw = rcall('HGET', status, id)
  local st, why = nil, nil
  if raw then st, why = read_status(raw) end
  if raw and not st then
    fail_corrupt(status, KEYS[16], id, raw, why, now)
    changes[#changes + 1] = {id, 'failed'}
  elseif st and st.s == 'scheduled' then
    st.s, st.d = 'queued', nil
    st.e = add_entry(KEYS[6 + st.b], group, id)
    rcall('HSET', status, id, status_text(st))
    rcall('ZADD', queued, now, id)
    changes[#changes + 1] = {id, 'queued'}
  end
end
emit(KEYS[4], maxlen, changes)
local first = rcall('ZRANGE', scheduled, 0, 0, 'WITHSCORES')
local last = rcall('XREVRANGE', KEYS[5], '+', '-', 'COUNT', 1)
return {#changes, first[2] and math.max(0, tonumber(first[2]) - now) or -1, last[1] and last[1][1] or '0-0'}
