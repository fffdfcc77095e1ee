--[[ Extend the leases the caller still holds (even when Redis is full: see
write_even_when_full).
KEYS[1] status  KEYS[2] active
ARGV[1] lease (ms)  ARGV[2..] two values per lease: job id, lease token
Returns: {positions (1-based, in the order of the leases) of leases the caller no longer
holds (or whose status cannot be read: the reclaim fails those), positions of leases whose
job's cancellation was requested}. Positions, not ids: a worker may hold an old attempt of a
job (still running after its lease was lost) beside its new one. ]]
local status, active = KEYS[1], KEYS[2]
write_even_when_full(status)
local expiry = now_ms() + tonumber(ARGV[1])
local lost, cancel = {}, {}
for i = 2, #ARGV, 2 do
  local id, position = ARGV[i], i / 2
  local raw = rcall('HGET', status, id)
  local st = raw and read_status(raw)
  if st and st.t == ARGV[i + 1] then
    rcall('ZADD', active, 'XX', expiry, id)
    if st.c then cancel[#cancel + 1] = position end
  else
    lost[#lost + 1] = position
  end
end
return {lost, cancel}
