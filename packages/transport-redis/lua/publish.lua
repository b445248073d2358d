--[[
  publish: store messages and make them ready, or delayed.

  KEYS[1..10]  ready lists, priority 0..9 (entries "<deliveries>|<id>")
  KEYS[11]     delayed zset (score: due time in ms; member "<seq:12 hex>|<priority>|<deliveries>|<id>")
  KEYS[12]     msg hash (id -> payload)
  KEYS[13]     marker zset (wakes blocked consumers)
  KEYS[14]     seq counter

  ARGV[1]      n, the number of messages
  ARGV[2+4i]   id            ARGV[3+4i] payload
  ARGV[4+4i]   priority 0..9 ARGV[5+4i] delay in ms (0: ready now)

  Returns: the number of messages stored. A message whose id is still stored is skipped (dedup), so a
  publish resent after a reconnect does not duplicate the message.
]]
local n = tonumber(ARGV[1])
local now
local seq
local levels = {}
local stored = 0
for i = 0, n - 1 do
  local b = 2 + 4 * i
  local id = ARGV[b]
  if redis.call('HSETNX', KEYS[12], id, ARGV[b + 1]) == 1 then
    stored = stored + 1
    local pri = tonumber(ARGV[b + 2])
    local delay = tonumber(ARGV[b + 3])
    if delay > 0 then
      if now == nil then
        local t = redis.call('TIME')
        now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
        seq = redis.call('INCRBY', KEYS[14], n) - n
      end
      seq = seq + 1
      redis.call('ZADD', KEYS[11], now + delay, string.format('%012x|%d|0|%s', seq, pri, id))
    else
      local l = levels[pri + 1]
      if l == nil then
        l = {}
        levels[pri + 1] = l
      end
      l[#l + 1] = '0|' .. id
    end
  end
end
for level, entries in pairs(levels) do
  redis.call('RPUSH', KEYS[level], unpack(entries))
end
if stored > 0 then
  redis.call('ZADD', KEYS[13], 0, 'm')
end
return stored
