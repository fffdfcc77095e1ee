--[[ Hold (take or renew) or release the scheduler lease of one queue, and say what is due.
KEYS[1] scheduler_lease  KEYS[2] scheduler  KEYS[3] schedule_due  KEYS[4] schedule_wake
ARGV[1] holder (worker id)  ARGV[2] lease ms  ARGV[3] 'hold' or 'release'
The scheduler hash keeps `seen` (ms when a leader last held the lease) and the last gap
(`gap_from`, `gap_to`): when a leader takes a free lease more than two leases after the
last sighting, no scheduler ran in between, and ticks due in that gap follow their
schedule's catch-up policy.
Returns: {1 leader | 0 not, ms the lease has left, gap from ms, gap to ms (0, 0: none yet),
ms until the next due schedule (-1: none), newest schedule_wake entry id ('0-0': none),
the server's time in ms} ]]
local lease, sched = KEYS[1], KEYS[2]
local holder, ttl, mode = ARGV[1], tonumber(ARGV[2]), ARGV[3]
local now = now_ms()
local current = rcall('GET', lease)
local leader = 0
if mode == 'release' then
  if current == holder then
    rcall('DEL', lease)
    rcall('HSET', sched, 'seen', now)
  end
elseif current == holder then
  rcall('PEXPIRE', lease, ttl)
  rcall('HSET', sched, 'seen', now)
  leader = 1
elseif not current then
  local seen = tonumber(rcall('HGET', sched, 'seen'))
  if not seen or now - seen > 2 * ttl then
    rcall('HSET', sched, 'gap_from', seen or 0, 'gap_to', now)
  end
  rcall('SET', lease, holder, 'PX', ttl)
  rcall('HSET', sched, 'seen', now)
  leader = 1
end
local left = ttl
if leader == 0 then left = math.max(0, rcall('PTTL', lease)) end
local gap = rcall('HMGET', sched, 'gap_from', 'gap_to')
local first = rcall('ZRANGE', KEYS[3], 0, 0, 'WITHSCORES')
local wake = rcall('XREVRANGE', KEYS[4], '+', '-', 'COUNT', 1)
return {
  leader, left, tonumber(gap[1]) or 0, tonumber(gap[2]) or 0,
  first[2] and math.max(0, tonumber(first[2]) - now) or -1,
  wake[1] and wake[1][1] or '0-0', now,
}
