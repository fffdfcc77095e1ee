--[[ Fire schedules: create the jobs of their ticks (unless a job with that id exists) and
advance each schedule's next due time, only if the schedule is still as the caller read it
(compare-and-set on revision and due time), so that schedulers racing each other can
neither fire a tick twice nor skip one. Tick times come from the caller (croniter).
KEYS[1] schedule_state  KEYS[2] schedule_due  KEYS[3] jobs  KEYS[4] status  KEYS[5] queued
KEYS[6] events  KEYS[7..16] streams of bands 0..9  KEYS[17] limits  KEYS[18] unique
KEYS[19] limit_keys
ARGV[1] consumer group  ARGV[2] events maxlen
ARGV[3..] per schedule: name, expected revision, expected due ms, next due ms, band, the
  controls' line of its jobs (see limits.lua; empty: none), job count n, then three values
  per job: id, job record (msgpack), tick ms (ascending).
  A tick whose job has a unique key that a live job holds creates nothing (the tick counts
  as fired: a schedule does not pile up runs of a job that is still running).
  Next due -1 is "run now": nothing is checked and the due time is left alone.
Returns: {ms until the next due schedule (-1: none), then two values per schedule: outcome
(1 fired; 0 changed, paused or deleted meanwhile; -1 a tick is not due yet by the server's
clock; nothing is written unless 1), jobs created} ]]
local states, due, jobs, status, queued = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local now, group, maxlen = now_ms(), ARGV[1], ARGV[2]
local out, changes = {-1}, {}
local i = 3
while i <= #ARGV do
  local name, rev = ARGV[i], tonumber(ARGV[i + 1])
  local expected_due, next_due = tonumber(ARGV[i + 2]), tonumber(ARGV[i + 3])
  local band, line, n = tonumber(ARGV[i + 4]), ARGV[i + 5], tonumber(ARGV[i + 6])
  local c = line ~= '' and parse_limits(line)
  local first_job = i + 7
  i = first_job + 3 * n
  local raw = rcall('HGET', states, name)
  local st = raw and cjson.decode(raw)
  local outcome = 1
  if not st then
    outcome = 0
  elseif next_due ~= -1 then
    if st.r ~= rev or st.d ~= expected_due or st.p then
      outcome = 0
    elseif n > 0 and tonumber(ARGV[first_job + 3 * n - 1]) > now then
      outcome = -1
    end
  end
  local created = 0
  if outcome == 1 then
    for j = first_job, first_job + 3 * (n - 1), 3 do
      local id = ARGV[j]
      if rcall('HEXISTS', status, id) == 0 and not unique_holder(c, KEYS[18], status, id, now) then
        if c then controls_created(c, line, KEYS[17], KEYS[18], KEYS[19], id) end
        rcall('HSET', jobs, id, ARGV[j + 1])
        local entry = add_entry(KEYS[7 + band], group, id)
        rcall('HSET', status, id, cjson.encode({s = 'queued', a = 0, b = band, e = entry}))
        rcall('ZADD', queued, entry_score(entry), id)
        changes[#changes + 1] = {id, 'queued'}
        created = created + 1
      end
      st.l, st.j = tonumber(ARGV[j + 2]), id
    end
    if next_due ~= -1 then
      st.d = next_due
      rcall('ZADD', due, next_due, name)
    end
    rcall('HSET', states, name, cjson.encode(st))
  end
  out[#out + 1] = outcome
  out[#out + 1] = created
end
emit(KEYS[6], maxlen, changes)
local first = rcall('ZRANGE', due, 0, 0, 'WITHSCORES')
if first[2] then out[1] = math.max(0, tonumber(first[2]) - now) end
return out
