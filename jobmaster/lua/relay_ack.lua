--[[ A message of a queue's outbox was delivered: forget it.
KEYS[1] relay  KEYS[2] relay_due
ARGV: the ids of the messages ]]
call_many('HDEL', KEYS[1], ARGV)
call_many('ZREM', KEYS[2], ARGV)
return #ARGV
