--[[
  dead-list: the oldest dead letters (read only).

  KEYS[1]      dead zset (score: dead-lettered at, ms; member: id)
  KEYS[2]      dead-info hash (id -> "<priority>|<reason>")
  KEYS[3]      msg hash

  ARGV[1]      the most dead letters to return

  Returns: a flat array, per dead letter: id, deadAt (ms), info ("<priority>|<reason>"), payload
]]
local entries = redis.call('ZRANGE', KEYS[1], 0, tonumber(ARGV[1]) - 1, 'WITHSCORES')
local out = {}
for i = 1, #entries, 2 do
  local id = entries[i]
  out[#out + 1] = id
  out[#out + 1] = tonumber(entries[i + 1])
  out[#out + 1] = redis.call('HGET', KEYS[2], id)
  out[#out + 1] = redis.call('HGET', KEYS[3], id)
end
return out
