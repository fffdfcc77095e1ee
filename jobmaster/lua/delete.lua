--[[ Delete a finished job and everything recorded about it.
KEYS[1] jobs  KEYS[2] status  KEYS[3] attempts  KEYS[4] logs  KEYS[5] progress
KEYS[6] results  KEYS[7] result_expiry  KEYS[8] succeeded  KEYS[9] failed  KEYS[10] cancelled
KEYS[11] limits
ARGV[1] job id
Returns: 'deleted', 'refused:<state>' for a job that has not finished, or 'missing'. ]]
local id = ARGV[1]
local raw = rcall('HGET', KEYS[2], id)
if not raw then return 'missing' end
local state = cjson.decode(raw).s
local idx = ({succeeded = KEYS[8], failed = KEYS[9], cancelled = KEYS[10]})[state]
if not idx then return 'refused:' .. state end
forget({jobs = KEYS[1], status = KEYS[2], attempts = KEYS[3], logs = KEYS[4],
  progress = KEYS[5], results = KEYS[6], result_expiry = KEYS[7], limits = KEYS[11]}, id,
  raw, idx)
return 'deleted'
