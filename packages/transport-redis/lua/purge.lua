--[[
  purge: remove up to ARGV[1] ready and delayed messages (in-flight and dead ones stay).
  Called until it returns 0, so a huge queue never blocks Redis in one long script.

  KEYS[1..10]  ready lists, priority 0..9 (entries "<deliveries>|<id>")
  KEYS[11]     delayed zset (member "<seq:12 hex>|<priority>|<deliveries>|<id>")
  KEYS[12]     msg hash

  ARGV[1]      the most messages to remove in this call

  Returns: the number of messages removed
]]
local limit = tonumber(ARGV[1])
local ids = {}
for level = 1, 10 do
  if #ids >= limit then
    break
  end
  local entries = redis.call('LRANGE', KEYS[level], 0, limit - #ids - 1)
  if #entries > 0 then
    for i = 1, #entries do
      local e = entries[i]
      ids[#ids + 1] = string.sub(e, string.find(e, '|', 1, true) + 1)
    end
    redis.call('LTRIM', KEYS[level], #entries, -1)
  end
end
if #ids < limit then
  local members = redis.call('ZRANGE', KEYS[11], 0, limit - #ids - 1)
  if #members > 0 then
    for i = 1, #members do
      ids[#ids + 1] = string.match(members[i], '^%x+|%d|%d+|(.*)$')
    end
    redis.call('ZREMRANGEBYRANK', KEYS[11], 0, #members - 1)
  end
end
-- unpack() is limited to a few thousand values: delete in chunks.
for i = 1, #ids, 1000 do
  redis.call('HDEL', KEYS[12], unpack(ids, i, math.min(i + 999, #ids)))
end
return #ids
