--[[
  renew-lease: extend a lease, only for its holder (compare and renew).

  KEYS[1]   the lease key (value: the holder)
  ARGV[1]   the holder asking
  ARGV[2]   the new time to live in ms

  Returns: 1 if renewed, 0 if the lease is held by someone else or expired
]]
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
