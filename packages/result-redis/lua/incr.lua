--[[
  incr: add to a counter and (re)start its time to live, atomically.

  KEYS[1]   the counter key
  ARGV[1]   the amount to add (an integer, may be negative)
  ARGV[2]   time to live in ms (0: no expiry)

  Returns: the counter's new value
]]
local v = redis.call('INCRBY', KEYS[1], ARGV[1])
local ttl = tonumber(ARGV[2])
if ttl > 0 then
  redis.call('PEXPIRE', KEYS[1], ttl)
end
return v
