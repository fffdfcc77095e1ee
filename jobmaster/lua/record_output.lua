--[[ Append log lines to attempts and set their progress.
KEYS[1] logs  KEYS[2] progress  KEYS[3] log_followers  KEYS[4] log_feed
ARGV[1] most bytes of log lines kept per attempt
ARGV[2..] three values per attempt: field '<job id>:<n>', log lines to append
  (concatenated msgpack, or ''), progress (msgpack, or '')
Lines past the limit are dropped; a msgpack nil marks the truncation once.
What is appended to the attempts of followed jobs is copied to the log feed (log_feed.lua).
Returns: the number of attempts whose log was truncated by this call. ]]
local logs, progress, limit = KEYS[1], KEYS[2], tonumber(ARGV[1])
local truncated = 0
local followed = log_followed(KEYS[3])
for i = 2, #ARGV, 3 do
  local field, lines, value = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  if lines ~= '' then
    local current = rcall('HGET', logs, field) or ''
    local appended = ''
    if #current + #lines <= limit then
      appended = lines
    elseif string.sub(current, -1) ~= '\192' then
      appended = '\192'
      truncated = truncated + 1
    end
    if appended ~= '' then
      rcall('HSET', logs, field, current .. appended)
      if followed then feed_log_lines(KEYS[3], KEYS[4], field, #current, appended) end
    end
  end
  if value ~= '' then rcall('HSET', progress, field, value) end
end
return truncated
