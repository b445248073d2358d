--[[
  publish: store messages and make them ready, or delayed.

  KEYS[1..10]  ready lists, priority 0..9 (entries "<deliveries>|<id>")
  KEYS[11]     delayed zset (score: due time in ms; member "<seq:12 hex>|<priority>|<deliveries>|<id>")
  KEYS[12]     msg hash (id -> payload)
  KEYS[13]     marker zset (wakes blocked consumers)
  KEYS[14]     seq counter

  ARGV[1]      the messages, packed in one binary string (one argument: the client's cost is per
               argument): a 4-byte count, then per message a 2-byte id length, the id, a 4-byte payload
               length, the payload, a 1-byte priority 0..9 and the delay in ms as an 8-byte double
               (0: ready now); big-endian, as written by `packPublishes` in src/codec.ts

  Returns: the number of messages stored. A message whose id is still stored is skipped (dedup), so a
  publish resent after a reconnect does not duplicate the message.
]]
local buf = ARGV[1]
local n, pos = struct.unpack('>I4', buf, 1)
local now
local seq
local levels = {}
local stored = 0
for _ = 1, n do
  local idLen, payloadLen, pri, delay
  idLen, pos = struct.unpack('>I2', buf, pos)
  local id = string.sub(buf, pos, pos + idLen - 1)
  pos = pos + idLen
  payloadLen, pos = struct.unpack('>I4', buf, pos)
  local payload = string.sub(buf, pos, pos + payloadLen - 1)
  pos = pos + payloadLen
  pri, delay, pos = struct.unpack('>Bd', buf, pos)
  if redis.call('HSETNX', KEYS[12], id, payload) == 1 then
    stored = stored + 1
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
