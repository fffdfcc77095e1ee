-- Prelude of the scripts that read statuses of many jobs in one call (claim, finish,
-- reclaim, renew, requeue, promote), after common.lua: what they do with a status that
-- cannot be read. Kept apart so that the other scripts do not carry it.

-- A status decoded by cjson, or nil and what is wrong with it. A status edited by hand or
-- by another program must cost only its own job, never abort a script that handles other
-- jobs too: it must be JSON, an object with a state, an attempt count and a band 0..9, and
-- hold only plain values that encode again (no nested value, no infinite number).
local function read_status(raw)
  local ok, st = pcall(cjson.decode, raw)
  if not ok then return nil, 'it is not JSON' end
  if type(st) ~= 'table' or type(st.s) ~= 'string' or type(st.a) ~= 'number'
      or type(st.b) ~= 'number' or st.a < 0 or st.a % 1 ~= 0 or st.b % 1 ~= 0
      or st.b < 0 or st.b > 9 then
    return nil, 'it lacks a state, an attempt count or a band 0..9'
  end
  for _, v in pairs(st) do
    local kind = type(v)
    if kind == 'table' or (kind == 'number' and (v ~= v or v == math.huge or v == -math.huge)) then
      return nil, 'it holds a value that is not a plain string or number'
    end
  end
  if (st.t and type(st.t) ~= 'string') or (st.e and type(st.e) ~= 'string') then
    return nil, 'its lease token or stream entry is not a string'
  end
  return st
end

-- Text that may be unreadable, made printable for a JSON field (bytes outside printable
-- ASCII as \xNN) and cut to 4 KiB.
local function printable(raw)
  return (string.gsub(raw:sub(1, 4096), '[^\32-\126]',
    function(c) return string.format('\\x%02x', c:byte()) end))
end

-- End a job whose status cannot be read: it is failed with error type CorruptStatus, the
-- unreadable status kept as text in field `raw`, so that nothing is lost and `retry` can
-- run it again (in the band the old status named, if it can be found, else band 0). The
-- caller removes the job from the index of the state it found it in.
local function fail_corrupt(status, failed, id, raw, why, now)
  local band = tonumber(string.match(raw, '"b":(%d)[,}]')) or 0
  local attempts = tonumber(string.match(raw, '"a":(%d+)[,}]')) or 0
  rcall('HSET', status, id, cjson.encode({s = 'failed', a = attempts, b = band, f = now,
    x = 'CorruptStatus', m = 'the status of this job in Redis could not be read (' .. why
      .. '); the job was stopped here, its unreadable status kept in field raw',
    raw = printable(raw)}))
  rcall('ZADD', failed, now, id)
end
