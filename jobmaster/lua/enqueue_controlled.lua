--[[ Enqueue new jobs that have flow controls (a unique key, limits: see limits.lua); jobs
without any go through enqueue.lua, which this one mirrors.
KEYS[1] jobs  KEYS[2] status  KEYS[3] queued  KEYS[4] scheduled  KEYS[5] events
KEYS[6] timers  KEYS[7] limits  KEYS[8] unique  KEYS[9] limit_keys  KEYS[10..19] streams
of bands 0..9
ARGV[1] consumer group  ARGV[2] events maxlen
ARGV[3..] five values per job: id, job record (msgpack), band, delay ms (0 = now), its
  controls' line (see limits.lua)
Returns: per job, 1 when created, 0 when the id already existed, or, when a live job holds
its unique key, that job's id (nothing is written). A unique key is live while its job is
scheduled, queued, blocked or active, and for unique_for ms after it ended. ]]
local jobs, status, queued, scheduled = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local limits, unique, limit_keys = KEYS[7], KEYS[8], KEYS[9]
local group, maxlen = ARGV[1], ARGV[2]
local now = now_ms()
local out, changes = {}, {}

for i = 3, #ARGV, 5 do
  local id, record, band, delay = ARGV[i], ARGV[i + 1], ARGV[i + 2], tonumber(ARGV[i + 3])
  local line = ARGV[i + 4]
  local c = parse_limits(line) or {ufor = 0}
  local holder = unique_holder(c, unique, status, id, now)
  if holder then
    out[#out + 1] = holder
  elseif rcall('HSETNX', jobs, id, record) == 0 then
    out[#out + 1] = 0
  else
    if delay > 0 then
      local due = now + delay
      schedule(scheduled, KEYS[6], id, due)
      rcall('HSET', status, id, string.format('{"a":0,"b":%s,"s":"scheduled","d":%d}', band, due))
      changes[#changes + 1] = change_json(id, 'scheduled')
    else
      local entry = add_entry(KEYS[10 + tonumber(band)], group, id)
      rcall('HSET', status, id, '{"a":0,"b":' .. band .. ',"s":"queued","e":"' .. entry .. '"}')
      rcall('ZADD', queued, entry_score(entry), id)
      changes[#changes + 1] = change_json(id, 'queued')
    end
    controls_created(c, line, limits, unique, limit_keys, id)
    out[#out + 1] = 1
  end
end
emit_json(KEYS[5], maxlen, changes)
return out
