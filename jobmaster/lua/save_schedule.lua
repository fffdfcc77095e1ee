--[[ Create or change a schedule: its definition, its paused flag and its next due time.
KEYS[1] schedules  KEYS[2] schedule_state  KEYS[3] schedule_due  KEYS[4] schedule_wake
ARGV[1] name  ARGV[2] 'create' (only when absent) or 'update' (only when present)
ARGV[3] definition (msgpack; '' keeps the stored one)  ARGV[4] expected revision (-1: any)
ARGV[5] paused (1 or 0)  ARGV[6] next due ms (-1: keep the stored one)
Every save changes the revision (a new schedule starts at the server's time in ms, so a
schedule deleted and created again never reuses one) and wakes the queue's scheduler.
Returns: {1 saved | 0 exists already (create) | -1 missing (update) | -2 the revision was
not the expected one (nothing written), revision} ]]
local defs, states, due = KEYS[1], KEYS[2], KEYS[3]
local name, mode, definition = ARGV[1], ARGV[2], ARGV[3]
local expected, paused, next_due = tonumber(ARGV[4]), ARGV[5] == '1', tonumber(ARGV[6])
local raw = rcall('HGET', states, name)
local r, d, _, last_tick, last_job
if raw then
  r, d, _, last_tick, last_job = decode_schedule_state(raw)
  if not r then
    error({err = 'ERR the state of schedule ' .. name .. ' could not be read (' .. d .. ')'})
  end
end
if mode == 'create' then
  if raw then return {0, r} end
  r = now_ms()
else
  if not raw then return {-1, 0} end
  if expected ~= -1 and r ~= expected then return {-2, r} end
  r = r + 1
end
if definition ~= '' then rcall('HSET', defs, name, definition) end
if next_due ~= -1 then d = next_due end
if paused then
  d = nil
  rcall('ZREM', due, name)
elseif d then
  rcall('ZADD', due, text(d), name)
end
rcall('HSET', states, name, encode_schedule_state(r, d, paused and '1' or nil, last_tick,
  last_job))
rcall('XADD', KEYS[4], 'MAXLEN', '~', 16, '*', 'n', name)
return {1, r}
