--[[
  stats: one consistent snapshot of a queue's counts (read only).

  KEYS[1..10]  ready lists, priority 0..9
  KEYS[11]     delayed zset
  KEYS[12]     active zset
  KEYS[13]     dead zset

  Returns: { ready, delayed, inFlight, dead }
]]
local ready = 0
for level = 1, 10 do
  ready = ready + redis.call('LLEN', KEYS[level])
end
return { ready, redis.call('ZCARD', KEYS[11]), redis.call('ZCARD', KEYS[12]), redis.call('ZCARD', KEYS[13]) }
