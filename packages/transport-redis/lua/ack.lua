--[[
  ack: finish deliveries, fenced by their lease.

  KEYS[1]      active zset (member "<token>|<priority>|<deliveries>|<id>")
  KEYS[2]      msg hash

  ARGV[1..n]   the active members of the deliveries to ack

  Returns: an array with, per delivery, 1 (acked: message deleted) or 0 (its lease was lost: the
  message was recovered for another consumer and is left alone)
]]
local res = {}
local ids = {}
for i = 1, #ARGV do
  if redis.call('ZREM', KEYS[1], ARGV[i]) == 1 then
    res[i] = 1
    ids[#ids + 1] = string.match(ARGV[i], '^%d+|%d|%d+|(.*)$')
  else
    res[i] = 0
  end
end
if #ids > 0 then
  redis.call('HDEL', KEYS[2], unpack(ids))
end
return res
