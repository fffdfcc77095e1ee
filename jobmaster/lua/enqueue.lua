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
local out, statuses, scores, queued_ids, scheduled_ids = {}, {}, {}, {}, {}
local nout, nstatuses, nscores = 0, 0, 0
-- The queued index's score of the jobs a stream gets in this call (see entry_score): the
-- first one's is read from its entry; each next one's is a thousandth more (its entry
-- follows in the stream, in that millisecond or a later one) up to the thousandths' 999,
-- when it is read from the entry again. Scores keep the stream's order, within the call
-- and after it, and read one entry in a thousand. They are texts made of pieces made once
-- per call (redis.call writes a number with sprintf's %.17g, ten times the cost).
local ms_of, seq_of, tens = {}, {}, {}
local DIGITS = {[0] = '0', '1', '2', '3', '4', '5', '6', '7', '8', '9'}
local function score(stream, entry)
  local seq = (seq_of[stream] or 999) + 1
  if seq > 999 then
    local ms
    ms, seq = match(entry, '^(%d+)-(%d+)$')
    seq = math.min(tonumber(seq), 999)
    ms_of[stream] = ms .. '.'
  end
  seq_of[stream] = seq
  local units = seq % 10
  local q = (seq - units) / 10
  local two = tens[q]
  if not two then
    two = string.format('%02d', q)
    tens[q] = two
  end
  return ms_of[stream] .. two .. DIGITS[units]
end
local fresh_of = {}  -- the start of the status of a job queued in band b (see claim.lua)
ints, heads = {}, {}
local i, argc = 3, #ARGV
while i <= argc do
  local count, band, delay = tonumber(ARGV[i]), tonumber(ARGV[i + 1]), ARGV[i + 3]
  local stream = KEYS[6 + tonumber(ARGV[i + 2])]
  delay = delay ~= '0' and tonumber(delay) or 0  -- '0' first: tonumber is a strtod
  local fresh = fresh_of[band]
  if not fresh then
    fresh = mpack('queued', 0, band)
    fresh_of[band] = fresh
  end
  for j = i + 4, i + 2 + 2 * count, 2 do
    local id = ARGV[j]
    nout = nout + 1
    -- the record and the status of a job are written and forgotten together
    if rcall('HSETNX', jobs, id, ARGV[j + 1]) == 0 then
      out[nout] = 0
    elseif delay > 0 then
      now = now or now_ms()
      local due = now + delay
      schedule(scheduled, KEYS[6], id, due)
      nstatuses = nstatuses + 2
      statuses[nstatuses - 1] = id
      statuses[nstatuses] = encode_status('scheduled', 0, band, nil, nil, nil, due)
      scheduled_ids[#scheduled_ids + 1] = id
      out[nout] = 1
    else
      local entry = add_entry(stream, group, id)
      nstatuses = nstatuses + 2
      statuses[nstatuses - 1] = id
      statuses[nstatuses] = fresh .. (heads[#entry] or head(#entry)) .. entry .. NIL .. NIL
      nscores = nscores + 2
      scores[nscores - 1] = score(stream, entry)
      scores[nscores] = id
      queued_ids[#queued_ids + 1] = id
      out[nout] = 1
    end
  end
  i = i + 4 + 2 * count
end
call_many('HSET', status, statuses)
call_many('ZADD', queued, scores)
local changes = {}
if #queued_ids > 0 then changes[1] = changes_to(queued_ids, 'queued') end
if #scheduled_ids > 0 then changes[#changes + 1] = changes_to(scheduled_ids, 'scheduled') end
emit_json(KEYS[5], maxlen, changes)
return out
