--[[
renew: extend a lease if `holder` still holds it.

KEYS[1]  the lease key
ARGV[1]  holder
ARGV[2]  time to live in ms
returns  1 renewed, 0 not the holder
]]
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
