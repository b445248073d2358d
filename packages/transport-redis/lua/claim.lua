--[[
  claim: promote due delayed messages, recover deliveries whose lease expired, then claim up to
  ARGV[1] ready deliveries (priority 9 first, FIFO within a level) under a lease.

  KEYS[1..10]  ready lists, priority 0..9 (entries "<deliveries>|<id>")
  KEYS[11]     delayed zset (score: due ms; member "<seq:12 hex>|<priority>|<deliveries>|<id>")
  KEYS[12]     active zset (score: lease deadline ms; member "<token>|<priority>|<deliveries>|<id>")
  KEYS[13]     msg hash (id -> payload)
  KEYS[14]     marker zset
  KEYS[15]     seq counter (also the source of lease tokens)
  KEYS[16]     dead zset (score: dead-lettered at, ms; member: id)
  KEYS[17]     dead-info hash (id -> "<priority>|<reason>")

  ARGV[1]      the most deliveries to claim (0: only promote and recover)
  ARGV[2]      lease length in ms (the visibility timeout)

  Returns: { token, nextDueMs, deliveries } where deliveries packs every claimed delivery in one binary
           string (one reply element instead of four per delivery): per delivery a 1-byte priority, a
           4-byte delivery count, a 2-byte id length, the id, a 4-byte payload length and the payload,
           big-endian; read by `unpackClaimed` in src/codec.ts
    token      fences this claim: ack/extend/nack name the delivery by its active member, which
               contains the token, so a holder whose lease was lost cannot settle a redelivery
    nextDueMs  ms until the earliest delayed message is due or lease expires, -1 if none
  A recovered delivery goes back to the head of its level; its delivery count grows by one when it
  is claimed again. The marker is set while ready messages remain, so another consumer wakes.
  An entry this layout cannot parse (another client wrote it) is dead-lettered under the entry itself,
  with an ERR_SERIALIZATION reason: it never stops the queue.
]]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)

local function malformed(entry, where)
  redis.call('ZADD', KEYS[16], now, entry)
  redis.call('HSET', KEYS[17], entry, '0|ERR_SERIALIZATION: malformed ' .. where .. ' entry (not written by celeriac)')
  redis.call('HSETNX', KEYS[13], entry, '')
end

local due = redis.call('ZRANGEBYSCORE', KEYS[11], '-inf', now, 'LIMIT', 0, 1000)
if #due > 0 then
  for i = 1, #due do
    local pri, dc, id = string.match(due[i], '^%x+|(%d)|(%d+)|(.+)$')
    if pri then
      redis.call('RPUSH', KEYS[tonumber(pri) + 1], dc .. '|' .. id)
    else
      malformed(due[i], 'delayed')
    end
  end
  redis.call('ZREMRANGEBYRANK', KEYS[11], 0, #due - 1)
end

local expired = redis.call('ZRANGEBYSCORE', KEYS[12], '-inf', now, 'LIMIT', 0, 1000)
if #expired > 0 then
  for i = #expired, 1, -1 do
    local pri, dc, id = string.match(expired[i], '^%d+|(%d)|(%d+)|(.+)$')
    if pri then
      redis.call('LPUSH', KEYS[tonumber(pri) + 1], dc .. '|' .. id)
    else
      malformed(expired[i], 'active')
    end
  end
  redis.call('ZREMRANGEBYRANK', KEYS[12], 0, #expired - 1)
end

local want = tonumber(ARGV[1])
local out = { 0, -1, '' }
if want > 0 then
  local ids = {}
  local pris = {}
  local dcs = {}
  for level = 10, 1, -1 do
    local got = redis.call('LPOP', KEYS[level], want)
    if got then
      for i = 1, #got do
        local e = got[i]
        local dc, id = string.match(e, '^(%d+)|(.+)$')
        if dc then
          local k = #ids + 1
          ids[k] = id
          pris[k] = level - 1
          dcs[k] = tonumber(dc) + 1
        else
          malformed(e, 'ready-list')
        end
      end
      want = want - #got
      if want <= 0 then
        break
      end
    end
  end
  if #ids > 0 then
    local token = redis.call('INCR', KEYS[15])
    out[1] = token
    local deadline = now + tonumber(ARGV[2])
    local payloads = redis.call('HMGET', KEYS[13], unpack(ids))
    local z = {}
    local packed = {}
    for i = 1, #ids do
      local p = payloads[i]
      if p then
        z[#z + 1] = deadline
        z[#z + 1] = token .. '|' .. pris[i] .. '|' .. dcs[i] .. '|' .. ids[i]
        packed[#packed + 1] = struct.pack('>BI4I2', pris[i], dcs[i], #ids[i])
        packed[#packed + 1] = ids[i]
        packed[#packed + 1] = struct.pack('>I4', #p)
        packed[#packed + 1] = p
      end
    end
    if #z > 0 then
      redis.call('ZADD', KEYS[12], unpack(z))
    end
    out[3] = table.concat(packed)
  end
end

if redis.call('EXISTS', KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8], KEYS[9], KEYS[10]) > 0 then
  redis.call('ZADD', KEYS[14], 0, 'm')
end

local nextDue = -1
local d = redis.call('ZRANGE', KEYS[11], 0, 0, 'WITHSCORES')
if d[2] then
  nextDue = tonumber(d[2]) - now
end
local a = redis.call('ZRANGE', KEYS[12], 0, 0, 'WITHSCORES')
if a[2] then
  local x = tonumber(a[2]) - now
  if nextDue < 0 or x < nextDue then
    nextDue = x
  end
end
if nextDue < -1 then
  nextDue = 0
end
out[2] = nextDue
return out
