--[[ Move scheduled jobs that are due into their band's stream.
KEYS[1] status  KEYS[2] scheduled  KEYS[3] queued  KEYS[4] events  KEYS[5] timers
KEYS[6..15] streams of bands 0..9  KEYS[16] failed  KEYS[17] limits  KEYS[18] limit_keys
KEYS[19] limit_due (and the keys of the queue's limits: see limits.lua)
ARGV[1] limit  ARGV[2] consumer group  ARGV[3] events maxlen
Returns: {promoted, ms until the next due job (-1 when none), newest timers entry id
('0-0' when none)}
Limit keys whose rate has room again by now are marked ready for the claims (counted as
promoted), and the next such time counts as a due time.
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
    rcall('HSET', status, id, cjson.encode(st))
    rcall('ZADD', queued, now, id)
    changes[#changes + 1] = {id, 'queued'}
  end
end
emit(KEYS[4], maxlen, changes)
local released = release_due(KEYS[17], KEYS[19], now)
local first = rcall('ZRANGE', scheduled, 0, 0, 'WITHSCORES')
local next_due = first[2] and tonumber(first[2])
local limit = rcall('ZRANGE', KEYS[19], 0, 0, 'WITHSCORES')
if limit[2] and (not next_due or tonumber(limit[2]) < next_due) then next_due = tonumber(limit[2]) end
local last = rcall('XREVRANGE', KEYS[5], '+', '-', 'COUNT', 1)
return {#changes + released, next_due and math.max(0, next_due - now) or -1, last[1] and last[1][1] or '0-0'}
