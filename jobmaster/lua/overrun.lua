--[[ Record that a running attempt passed its timeout while its code still runs (a sync
handler's thread cannot be stopped from outside). The attempt is closed as 'timed_out' now;
the job stays active, its lease held, until the code really returns and the attempt's end
(finish.lua) schedules the retry. Runs even when Redis is full (see write_even_when_full).
KEYS[1] status  KEYS[2] attempts
ARGV[1] job id  ARGV[2] lease token  ARGV[3] error type  ARGV[4] error message
Returns: 1 when recorded, 0 when the lease is no longer held (nothing written). ]]
local status, attempts = KEYS[1], KEYS[2]
local id, token = ARGV[1], ARGV[2]
local raw = rcall('HGET', status, id)
local st = raw and read_status(raw)
if not st or st.t ~= token then return 0 end
write_even_when_full(status)
close_attempt(attempts, id .. ':' .. st.a, now_ms(), 'timed_out', ARGV[3], ARGV[4], '')
return 1
