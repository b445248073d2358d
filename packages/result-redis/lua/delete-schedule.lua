--[[
  delete-schedule: remove one runtime schedule record; a removal is a write (the version grows).

  KEYS[1]   the schedules hash
  KEYS[2]   the version counter
  ARGV[1]   the schedule id

  Returns: 1 if a record was removed, 0 if there was none
]]
if redis.call('HDEL', KEYS[1], ARGV[1]) == 1 then
  redis.call('INCR', KEYS[2])
  return 1
end
return 0
