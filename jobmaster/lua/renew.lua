--[[ Extend the leases the caller still holds.
KEYS[1] status  KEYS[2] active
ARGV[1] lease (ms)  ARGV[2..] two values per job: id, lease token
Returns: the ids whose lease is no longer held by the caller. ]]
local status, active = KEYS[1], KEYS[2]
local expiry = now_ms() + tonumber(ARGV[1])
local lost = {}
for i = 2, #ARGV, 2 do
  local id = ARGV[i]
  local raw = rcall('HGET', status, id)
  if raw and cjson.decode(raw).t == ARGV[i + 1] then
    rcall('ZADD', active, 'XX', expiry, id)
  else
    lost[#lost + 1] = id
  end
end
return lost
