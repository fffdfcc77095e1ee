--[[ Forget finished jobs past the retention and results past their ttl, for queues that
see no completions (finish.lua prunes as it goes otherwise).
KEYS[1] jobs  KEYS[2] status  KEYS[3] attempts  KEYS[4] logs  KEYS[5] progress
KEYS[6] results  KEYS[7] result_expiry  KEYS[8] succeeded  KEYS[9] failed  KEYS[10] cancelled
KEYS[11] limits
ARGV[1] retention (ms)  ARGV[2] most jobs forgotten per index
Returns: the number of jobs forgotten. ]]
return prune({jobs = KEYS[1], status = KEYS[2], attempts = KEYS[3], logs = KEYS[4],
  progress = KEYS[5], results = KEYS[6], result_expiry = KEYS[7], limits = KEYS[11],
  finished = {KEYS[8], KEYS[9], KEYS[10]}}, now_ms(), tonumber(ARGV[1]), tonumber(ARGV[2]))
