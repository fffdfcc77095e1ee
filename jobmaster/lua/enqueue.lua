--[[ Enqueue new jobs; an id that already exists is left untouched.
KEYS[1] jobs  KEYS[2] status  KEYS[3] queued  KEYS[4] scheduled  KEYS[5] events
KEYS[6] timers  KEYS[7..] the streams of the bands these jobs use
ARGV[1] consumer group  ARGV[2] events maxlen
ARGV[3..] runs of jobs of one band and delay, each: the number of jobs, the band, the index
  of the band's stream among KEYS[7..] (1-based), the delay ms (0 = now), then two values
  per job: id, job record (msgpack). (What the jobs of a run share is sent once: every
  argument costs Redis an object and Lua a string.)
Returns: one integer per job, 1 when created, 0 when the id already existed.
This is the hot path of every producer: the writes to the status hash and the queued index
of a batch are one command each. ]]
local jobs, status, queued, scheduled = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local now, group, maxlen = nil, ARGV[1], ARGV[2]  -- the clock is read for delayed jobs only
local out, changes, statuses, scores = {}, {}, {}, {}
local i, argc = 3, #ARGV
while i <= argc do
  local count, band, delay = tonumber(ARGV[i]), tonumber(ARGV[i + 1]), ARGV[i + 3]
  local stream = KEYS[6 + tonumber(ARGV[i + 2])]
  delay = delay ~= '0' and tonumber(delay) or 0  -- '0' first: tonumber is a strtod
  for j = i + 4, i + 2 + 2 * count, 2 do
    local id = ARGV[j]
    -- the record and the status of a job are written and forgotten together
    if rcall('HSETNX', jobs, id, ARGV[j + 1]) == 0 then
      out[#out + 1] = 0
    elseif delay > 0 then
      now = now or now_ms()
      local due = now + delay
      schedule(scheduled, KEYS[6], id, due)
      statuses[#statuses + 1] = id
      statuses[#statuses + 1] = encode_status('scheduled', 0, band, nil, nil, nil, due)
      changes[#changes + 1] = change_json(id, 'scheduled')
      out[#out + 1] = 1
    else
      local entry = add_entry(stream, group, id)
      statuses[#statuses + 1] = id
      statuses[#statuses + 1] = encode_status('queued', 0, band, entry)
      scores[#scores + 1] = entry_score(entry)
      scores[#scores + 1] = id
      changes[#changes + 1] = change_json(id, 'queued')
      out[#out + 1] = 1
    end
  end
  i = i + 4 + 2 * count
end
call_many('HSET', status, statuses)
call_many('ZADD', queued, scores)
emit_json(KEYS[5], maxlen, changes)
return out
