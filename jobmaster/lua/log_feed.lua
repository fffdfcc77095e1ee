-- Prelude of record_output.lua: the live feed of followed jobs' log lines.
-- `jobmaster logs -f` lists the job it follows in the queue's log_followers (a sorted set
-- that exists only while someone follows a job of the queue); the lines appended to a
-- followed job's attempt are copied to the capped log_feed stream, which the follower
-- reads with XREAD BLOCK. A queue nobody follows pays one EXISTS per call.

-- Whether a job of the queue is followed at all (once per script call).
local function log_followed(followers)
  return rcall('EXISTS', followers) == 1
end

-- Copy `lines`, appended at byte `offset` of the attempt `field` ('<job id>:<n>'), to the
-- feed when its job is followed: fields f (the attempt), o (the offset), l (the lines).
local function feed_log_lines(followers, feed, field, offset, lines)
  local id = string.match(field, '^(.*):%d+$')
  if id and rcall('ZSCORE', followers, id) then
    rcall('XADD', feed, 'MAXLEN', '~', 1000, '*', 'f', field, 'o', offset, 'l', lines)
  end
end
