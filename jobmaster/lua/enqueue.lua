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
local out, statuses, scores, queued_ids, scheduled_ids = {}, {}, {}, nil, nil
local nout, nstatuses, nscores, nqueued = 0, 0, 0, 0
-- The queued index's score of the jobs a stream gets in a row (see entry_score): the first
-- one's is read from its entry; each next one's is a thousandth more (its entry follows in
-- the stream, in that millisecond or a later one) up to the thousandths' 999, when it is
-- read from the entry again. Scores keep the stream's order, within the call and after it,
-- and read one entry in a thousand. They are texts, made of pieces (redis.call writes a
-- number with sprintf's %.17g, which costs ten times as much). No closure: each costs a
-- call.
local last_stream, ms, seq, tens, digits = nil, nil, 999, nil, nil
local i, argc = 3, #ARGV
while i <= argc do
  local count, band, delay = tonumber(ARGV[i]), tonumber(ARGV[i + 1]), ARGV[i + 3]
  local stream = KEYS[6 + tonumber(ARGV[i + 2])]
  delay = delay ~= '0' and tonumber(delay) or 0  -- '0' first: tonumber is a strtod
  -- the status of a job queued now, in this band: `start` .. entry .. NIL .. NIL, where
  -- `start` depends on the entry's length only (taken from the first status of a length,
  -- packed whole: one job needs nothing more)
  local start, length, first = nil, nil, nil
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
      scheduled_ids = scheduled_ids or {}
      scheduled_ids[#scheduled_ids + 1] = id
      out[nout] = 1
    else
      local entry = add_entry(stream, group, id)
      local st
      if #entry == length then
        start = start or sub(first, 1, -length - 3)
        st = start .. entry .. NIL .. NIL
      else
        length, start = #entry, nil
        st = mpack('queued', 0, band, entry, nil, nil)
        first = st
      end
      nstatuses = nstatuses + 2
      statuses[nstatuses - 1] = id
      statuses[nstatuses] = st
      if stream ~= last_stream or seq >= 999 then
        local seq_text
        last_stream, ms, seq_text = stream, match(entry, '^(%d+)-(%d+)$')
        ms, seq = ms .. '.', tonumber(seq_text)
        if seq >= 999 then
          seq, st = 999, ms .. '999'
        else
          st = ms .. (seq < 10 and '00' or seq < 100 and '0' or '') .. seq_text
        end
      else
        seq = seq + 1
        if not tens then tens, digits = {}, {[0] = '0', '1', '2', '3', '4', '5', '6', '7', '8', '9'} end
        local units = seq % 10
        local q = (seq - units) / 10
        local two = tens[q]
        if not two then
          two = string.format('%02d', q)
          tens[q] = two
        end
        st = ms .. two .. digits[units]
      end
      nscores = nscores + 2
      scores[nscores - 1] = st
      scores[nscores] = id
      nqueued = nqueued + 1
      if nqueued == 1 then
        queued_ids = id  -- a list from the second on (one job needs no table)
      else
        if nqueued == 2 then queued_ids = {queued_ids} end
        queued_ids[nqueued] = id
      end
      out[nout] = 1
    end
  end
  i = i + 4 + 2 * count
end
call_many('HSET', status, statuses)
call_many('ZADD', queued, scores)
if nqueued > 0 then
  emit_json(KEYS[5], maxlen, {nqueued == 1 and change_json(queued_ids, 'queued')
    or changes_to(queued_ids, 'queued'),
    scheduled_ids and changes_to(scheduled_ids, 'scheduled') or nil})
elseif scheduled_ids then
  emit_json(KEYS[5], maxlen, {changes_to(scheduled_ids, 'scheduled')})
end
return out
