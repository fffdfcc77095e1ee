--[[ Extend the leases the caller still holds.
KEYS[1] status  KEYS[2] active
ARGV[1] lease (ms)  ARGV[2..] two values per job: id, lease token
Returns: {ids whose lease is no longer held by the caller (or whose status cannot be read:
the reclaim fails those), ids whose cancellation was requested}. ]]
local status, active = KEYS[1], KEYS[2]
local expiry = now_ms() + tonumber(ARGV[1])
local lost, cancel = {}, {}
for i = 2, #ARGV, 2 do
  local id = ARGV[i]
  local raw = rcall('HGET', status, id)
  local st = raw and read_status(raw)
  if st and st.t == ARGV[i + 1] then
    rcall('ZADD', active, 'XX', expiry, id)
    if st.c then cancel[#cancel + 1] = id end
  else
    lost[#lost + 1] = id
  end
end
return {lost, cancel}
