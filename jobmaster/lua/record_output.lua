--[[ Append log lines to attempts and set their progress.
KEYS[1] logs  KEYS[2] progress
ARGV[1] most bytes of log lines kept per attempt
ARGV[2..] three values per attempt: field '<job id>:<n>', log lines to append
  (concatenated msgpack, or ''), progress (msgpack, or '')
Lines past the limit are dropped; a msgpack nil marks the truncation once.
Returns: the number of attempts whose log was truncated by this call. ]]
local logs, progress, limit = KEYS[1], KEYS[2], tonumber(ARGV[1])
local truncated = 0
for i = 2, #ARGV, 3 do
  local field, lines, value = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  if lines ~= '' then
    local current = rcall('HGET', logs, field) or ''
    if #current + #lines <= limit then
      rcall('HSET', logs, field, current .. lines)
    elseif string.sub(current, -1) ~= '\192' then
      rcall('HSET', logs, field, current .. '\192')
      truncated = truncated + 1
    end
  end
  if value ~= '' then rcall('HSET', progress, field, value) end
end
return truncated
