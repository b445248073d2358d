--[[
  dead-redrive: move dead letters back to the tail of their ready level, delivery count reset.

  KEYS[1..10]  ready lists, priority 0..9 (entries "<deliveries>|<id>")
  KEYS[11]     dead zset (member: id)
  KEYS[12]     dead-info hash (id -> "<priority>|<reason>")
  KEYS[13]     marker zset

  ARGV[1]      '*' to redrive the oldest ARGV[2] dead letters, or 'ids' to redrive ARGV[2..n]

  Returns: the number of messages moved (ids that are not dead letters are skipped)
]]
local ids
if ARGV[1] == '*' then
  ids = redis.call('ZRANGE', KEYS[11], 0, tonumber(ARGV[2]) - 1)
else
  ids = {}
  for i = 2, #ARGV do
    ids[#ids + 1] = ARGV[i]
  end
end
local moved = 0
for i = 1, #ids do
  local id = ids[i]
  if redis.call('ZREM', KEYS[11], id) == 1 then
    local info = redis.call('HGET', KEYS[12], id)
    local pri = 0
    if info then
      pri = tonumber(string.sub(info, 1, 1))
    end
    redis.call('HDEL', KEYS[12], id)
    redis.call('RPUSH', KEYS[pri + 1], '0|' .. id)
    moved = moved + 1
  end
end
if moved > 0 then
  redis.call('ZADD', KEYS[13], 0, 'm')
end
return moved
