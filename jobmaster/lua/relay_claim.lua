--[[ Take messages of a queue's outbox to deliver them: those due by now (or the ones named),
each moved one lease ahead, so that it is delivered again if its deliverer dies before
acknowledging it. Groups that ended longer than the retention ago are forgotten here.
KEYS[1] relay  KEYS[2] relay_due  KEYS[3] groups  KEYS[4] group_state  KEYS[5] group_members
KEYS[6] group_index  KEYS[7] group_ended
ARGV[1] limit  ARGV[2] lease ms  ARGV[3] retention ms  ARGV[4..] ids (none: those due)
Returns: id, message, id, message... ]]
local relay, due = KEYS[1], KEYS[2]
local now = now_ms()
local limit, lease, retention = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local ids = {}
if #ARGV > 3 then
  for i = 4, #ARGV do ids[#ids + 1] = ARGV[i] end
else
  ids = rcall('ZRANGEBYSCORE', due, '-inf', now, 'LIMIT', 0, limit)
end
local out = {}
for _, id in ipairs(ids) do
  local message = rcall('HGET', relay, id)
  if message then
    rcall('ZADD', due, now + lease, id)
    out[#out + 1] = id
    out[#out + 1] = message
  else
    rcall('ZREM', due, id)  -- acknowledged already
  end
end
local old = rcall('ZRANGEBYSCORE', KEYS[7], '-inf', now - retention, 'LIMIT', 0, 100)
for _, gid in ipairs(old) do
  local raw = rcall('HGET', KEYS[3], gid)
  local size = raw and cmsgpack.unpack(raw).z or 0
  for i = 0, size - 1 do rcall('HDEL', KEYS[5], gid .. ':' .. text(i)) end
  rcall('HDEL', KEYS[3], gid, gid .. ':m')
  rcall('HDEL', KEYS[4], gid)
  rcall('ZREM', KEYS[6], gid)
  rcall('ZREM', KEYS[7], gid)
end
return out
