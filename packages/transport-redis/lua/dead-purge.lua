--[[
  dead-purge: delete up to ARGV[1] of the oldest dead letters. Called until it returns 0.

  KEYS[1]      dead zset (member: id)
  KEYS[2]      dead-info hash
  KEYS[3]      msg hash

  ARGV[1]      the most dead letters to delete in this call

  Returns: the number deleted
]]
local ids = redis.call('ZRANGE', KEYS[1], 0, tonumber(ARGV[1]) - 1)
if #ids > 0 then
  redis.call('ZREMRANGEBYRANK', KEYS[1], 0, #ids - 1)
  redis.call('HDEL', KEYS[2], unpack(ids))
  redis.call('HDEL', KEYS[3], unpack(ids))
end
return #ids
