--[[ Claim up to COUNT runnable jobs, highest band first; start their attempts and leases.
KEYS[1] jobs  KEYS[2] status  KEYS[3] queued  KEYS[4] active  KEYS[5] attempts
KEYS[6] events  KEYS[7] failed  KEYS[8..17] streams of bands 0..9
ARGV[1] consumer group  ARGV[2] consumer (worker id)  ARGV[3] count  ARGV[4] lease (ms)
ARGV[5] hostname  ARGV[6] pid  ARGV[7] events maxlen
Returns: {claimed, newest}
  claimed: flat, four values per job: id, attempt number, job record, attempts lost so far
  newest: when nothing was claimed, the newest entry id of each band 0..9 ('0-0' when
  empty), from which a blocking XREAD waits for new work; otherwise empty.
An entry without a known job is acknowledged, deleted and recorded as a failed job
'invalid-<entry id>' so that the queue keeps moving. ]]
local jobs, status, queued, active, attempts = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local now, group, consumer = now_ms(), ARGV[1], ARGV[2]
local remaining, lease = tonumber(ARGV[3]), tonumber(ARGV[4])
local host, pid, maxlen = ARGV[5], tonumber(ARGV[6]), ARGV[7]
local claimed, changes = {}, {}

local function dead_letter(stream, band, entry, fields, why)
  drop_entry(stream, group, entry)
  local id = 'invalid-' .. entry
  rcall('HSET', jobs, id, cjson.encode({n = '', p = band, c = now, raw = fields}))
  rcall('HSET', status, id, cjson.encode(
    {s = 'failed', a = 0, b = band, f = now, x = 'InvalidStreamEntry', m = why}))
  rcall('ZADD', KEYS[7], now, id)
  changes[#changes + 1] = {id, 'failed'}
end

local function start(stream, band, entry, fields)
  local id = (fields[1] == 'id') and fields[2] or nil
  if not id then
    return dead_letter(stream, band, entry, fields,
      'stream entry ' .. entry .. ' in band ' .. band .. ' has no job id')
  end
  local raw = rcall('HGET', status, id)
  if not raw then
    return dead_letter(stream, band, entry, fields,
      'stream entry ' .. entry .. ' names job ' .. id .. ', which does not exist')
  end
  local st = cjson.decode(raw)
  if st.s ~= 'queued' or st.e ~= entry then
    drop_entry(stream, group, entry)  -- superseded: the job was cancelled or moved
    return
  end
  local n = st.a + 1
  st.s, st.a, st.t = 'active', n, consumer .. '/' .. n
  rcall('HSET', status, id, cjson.encode(st))
  rcall('ZREM', queued, id)
  rcall('ZADD', active, now + lease, id)
  rcall('HSET', attempts, id .. ':' .. n,
    cjson.encode({n = n, w = consumer, h = host, p = pid, s = now}))
  claimed[#claimed + 1] = id
  claimed[#claimed + 1] = n
  claimed[#claimed + 1] = rcall('HGET', jobs, id) or ''
  claimed[#claimed + 1] = st.l or 0
  changes[#changes + 1] = {id, 'active'}
end

for band = 9, 0, -1 do
  if remaining <= 0 then break end
  local stream = KEYS[8 + band]
  if rcall('EXISTS', stream) == 1 then
    local reply = redis.pcall('XREADGROUP', 'GROUP', group, consumer,
      'COUNT', remaining, 'STREAMS', stream, '>')
    for _, item in ipairs(read_entries(reply)) do
      start(stream, band, item[1], item[2])
      remaining = remaining - 1
    end
  end
end
emit(KEYS[6], maxlen, changes)

local newest = {}
if #claimed == 0 then
  for band = 0, 9 do
    local last = rcall('XREVRANGE', KEYS[8 + band], '+', '-', 'COUNT', 1)
    newest[band + 1] = last[1] and last[1][1] or '0-0'
  end
end
return {claimed, newest}
