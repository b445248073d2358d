--[[
  extend: renew the lease of deliveries still held.

  KEYS[1]      active zset (member "<token>|<priority>|<deliveries>|<id>")

  ARGV[1]      lease length in ms
  ARGV[2..n]   the active members of the deliveries to renew

  Returns: an array with, per delivery, 1 (renewed until now + ARGV[1]) or 0 (lease lost)
]]
local t = redis.call('TIME')
local deadline = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) + tonumber(ARGV[1])
local res = {}
for i = 2, #ARGV do
  if redis.call('ZSCORE', KEYS[1], ARGV[i]) then
    redis.call('ZADD', KEYS[1], 'XX', deadline, ARGV[i])
    res[i - 1] = 1
  else
    res[i - 1] = 0
  end
end
return res
