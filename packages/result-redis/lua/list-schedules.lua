--[[
  list-schedules: every runtime schedule record and the version they are at, read together.

  KEYS[1]   the schedules hash
  KEYS[2]   the version counter

  Returns: { version (a string, '0' before any write), { id, "<rev> <data>", id, "<rev> <data>", ... } }
]]
return { redis.call('GET', KEYS[2]) or '0', redis.call('HGETALL', KEYS[1]) }
