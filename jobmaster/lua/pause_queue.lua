--[[ Pause or resume a queue: while paused, claims take nothing from it (claim.lua answers
`paused`), enqueues still write, running attempts go on. Workers are told through the
queue's control stream (an entry {q: pause|resume}), so that a resumed queue's idle workers
claim at once.
KEYS[1] paused  KEYS[2] control
ARGV[1] 'pause' or 'resume'
Returns: 1 when the queue's state changed, 0 when it was so already. ]]
local changed
if ARGV[1] == 'pause' then
  changed = rcall('SET', KEYS[1], '1', 'NX') and 1 or 0
else
  changed = rcall('DEL', KEYS[1])
end
if changed == 1 then
  rcall('XADD', KEYS[2], 'MAXLEN', '~', 1000, '*', 'q', ARGV[1])
end
return changed
