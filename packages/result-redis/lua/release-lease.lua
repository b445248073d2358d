--[[
  release-lease: give up a lease, only for its holder (compare and delete).

  KEYS[1]   the lease key (value: the holder)
  ARGV[1]   the holder asking

  Returns: 1 if released, 0 if the lease is held by someone else or expired
]]
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
