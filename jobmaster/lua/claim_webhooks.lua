--[[ Claim the webhook deliveries of a queue that are due: each one's due time moves ahead by
the claim's lease, so that no other worker tries it meanwhile, and another one does once the
lease passed (if this worker died).
KEYS[1] webhook_due (sorted set: delivery id -> due time, ms)
KEYS[2] webhook_deliveries (hash: delivery id -> delivery, JSON)
ARGV[1] lease (ms)  ARGV[2] most deliveries to claim
Returns: {id, delivery, id, delivery, ...} ]]
local due, deliveries = KEYS[1], KEYS[2]
local now = now_ms()
local ids = rcall('ZRANGEBYSCORE', due, '-inf', now, 'LIMIT', 0, tonumber(ARGV[2]))
local claimed = {}
for _, id in ipairs(ids) do
  local delivery = rcall('HGET', deliveries, id)
  if delivery then
    rcall('ZADD', due, now + tonumber(ARGV[1]), id)
    claimed[#claimed + 1] = id
    claimed[#claimed + 1] = delivery
  else
    rcall('ZREM', due, id)
  end
end
return claimed
