--[[ Enqueue new jobs; an id that already exists is left untouched.
KEYS[1] jobs  KEYS[2] status  KEYS[3] queued  KEYS[4] scheduled  KEYS[5] events
KEYS[6] timers  KEYS[7..] the streams of the bands these jobs use
ARGV[1] consumer group  ARGV[2] events maxlen
ARGV[3..] five values per job: id, job record (msgpack), band, index of the band's stream
  among KEYS[7..] (1-based), delay ms (0 = now)
Returns: one integer per job, 1 when created, 0 when the id already existed. ]]
local jobs, status, queued, scheduled = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local now, group, maxlen = now_ms(), ARGV[1], ARGV[2]
local out, changes = {}, {}
-- Index scores grow by a microsecond per job, so "newest first" holds within a batch and
-- within a millisecond.
local top = rcall('ZREVRANGE', queued, 0, 0, 'WITHSCORES')[2]
local score = top and math.max(now, tonumber(top) + 0.001) or now
for i = 3, #ARGV, 5 do
  local id, record, band = ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 2])
  local stream = KEYS[6 + tonumber(ARGV[i + 3])]
  local due = now + tonumber(ARGV[i + 4])
  if rcall('HEXISTS', status, id) == 1 then
    out[#out + 1] = 0
  else
    rcall('HSET', jobs, id, record)
    local st = {a = 0, b = band}
    if due > now then
      st.s = 'scheduled'
      st.d = due
      schedule(scheduled, KEYS[6], id, due)
    else
      st.s = 'queued'
      st.e = add_entry(stream, group, id)
      rcall('ZADD', queued, string.format('%.3f', score), id)
      score = score + 0.001
    end
    rcall('HSET', status, id, cjson.encode(st))
    changes[#changes + 1] = {id, st.s}
    out[#out + 1] = 1
  end
end
emit(KEYS[5], maxlen, changes)
return out
