-- Prelude of finish.lua: the webhook deliveries of the jobs whose end the call records,
-- written in the same script as the end (a worker that dies right after a finish loses
-- none). They go to the queue's outbox, the webhook_deliveries hash and the webhook_due set,
-- from which every worker of the queue claims them (claim_webhooks.lua).

-- ARGV from `first` on: 'W', then four values per delivery: job id, the final state it is
-- for, delivery id, delivery (JSON). A delivery is written when this call recorded its job's
-- end with that state (`ended`: job id -> the state its recorded end is for), due at once.
local function write_outbox(due, deliveries, ended, first)
  for j = first + 1, #ARGV, 4 do
    if ended[ARGV[j]] == ARGV[j + 1] then
      rcall('HSET', deliveries, ARGV[j + 2], ARGV[j + 3])
      rcall('ZADD', due, 0, ARGV[j + 2])
    end
  end
end
