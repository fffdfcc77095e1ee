--[[ Which of a list of commands the user running this script may not run (its ACL).
KEYS[1] a key of the queue (so that the call goes where that queue's keys live)
ARGV: per command: its name as reported, the number n of words that follow, then the n
words of an example call (the command, its subcommand if any, key names and values)
Returns: the names of the commands refused, or -1 where Redis cannot tell (before 7.0). ]]
if not redis.acl_check_cmd then return -1 end
local refused = {}
local i = 1
while i <= #ARGV do
  local name, n = ARGV[i], tonumber(ARGV[i + 1])
  -- pcall: a command this server does not know is not one jobmaster can use here either
  local known, allowed = pcall(redis.acl_check_cmd, unpack(ARGV, i + 2, i + 1 + n))
  if known and not allowed then refused[#refused + 1] = name end
  i = i + 2 + n
end
return refused
