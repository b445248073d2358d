--[[
unlock: release kombu's `unacked_mutex` if this client still holds it (redis-py's Lock does the same).

KEYS[1]  unacked_mutex
ARGV[1]  the token the lock was taken with
returns  1 released, 0 not held by this token
]]
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
