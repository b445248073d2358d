--[[
purge: drop a queue's ready and delayed messages.

KEYS[1]  unacked          hash
KEYS[2]  unacked_index    zset
KEYS[3]  delayed index of the queue
KEYS[4..] the queue's lists
returns  how many messages were dropped
]]
local n = 0
for i = 4, #KEYS do
  n = n + redis.call('LLEN', KEYS[i])
  redis.call('DEL', KEYS[i])
end
local tags = redis.call('ZRANGE', KEYS[3], 0, -1)
for _, tag in ipairs(tags) do
  n = n + redis.call('HDEL', KEYS[1], tag)
  redis.call('ZREM', KEYS[2], tag)
end
redis.call('DEL', KEYS[3])
return n
