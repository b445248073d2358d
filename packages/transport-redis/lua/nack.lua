--[[
  nack: settle deliveries other than by ack — requeue now, requeue after a delay, dead-letter, or
  give back unstarted — fenced by their lease.

  KEYS[1..10]  ready lists, priority 0..9 (entries "<deliveries>|<id>")
  KEYS[11]     delayed zset (score: due ms; member "<seq:12 hex>|<priority>|<deliveries>|<id>")
  KEYS[12]     active zset (member "<token>|<priority>|<deliveries>|<id>")
  KEYS[13]     marker zset
  KEYS[14]     seq counter
  KEYS[15]     dead zset (score: dead-lettered at, ms; member: id)
  KEYS[16]     dead-info hash (id -> "<priority>|<reason>")

  ARGV[1]      n, the number of deliveries
  ARGV[2+3i]   the delivery's active member
  ARGV[3+3i]   mode: 'r' requeue at the head of its level; 'u' unclaim (requeue at the head and do
               not count the delivery: it was never handed out); 'd' requeue after a delay;
               'x' dead-letter
  ARGV[4+3i]   'd': the delay in ms; 'x': the reason; otherwise ignored

  Returns: an array with, per delivery, 1 (done) or 0 (its lease was lost; nothing changed)
]]
local n = tonumber(ARGV[1])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local res = {}
local heads = {}
local wake = false
local seq
for i = 0, n - 1 do
  local b = 2 + 3 * i
  local member = ARGV[b]
  if redis.call('ZREM', KEYS[12], member) == 1 then
    res[i + 1] = 1
    local _, pri, dc, id = string.match(member, '^(%d+)|(%d)|(%d+)|(.*)$')
    local mode = ARGV[b + 1]
    if mode == 'x' then
      redis.call('ZADD', KEYS[15], now, id)
      redis.call('HSET', KEYS[16], id, pri .. '|' .. ARGV[b + 2])
    elseif mode == 'd' then
      if seq == nil then
        seq = redis.call('INCRBY', KEYS[14], n) - n
      end
      seq = seq + 1
      local delay = tonumber(ARGV[b + 2])
      redis.call('ZADD', KEYS[11], now + delay, string.format('%012x|%s|%s|%s', seq, pri, dc, id))
      wake = true
    else
      if mode == 'u' then
        dc = tostring(tonumber(dc) - 1)
      end
      local level = tonumber(pri) + 1
      local l = heads[level]
      if l == nil then
        l = {}
        heads[level] = l
      end
      l[#l + 1] = dc .. '|' .. id
      wake = true
    end
  else
    res[i + 1] = 0
  end
end
-- LPUSH reverses its arguments: push each level's entries last-first so they keep their order.
for level, entries in pairs(heads) do
  for j = #entries, 1, -1 do
    redis.call('LPUSH', KEYS[level], entries[j])
  end
end
if wake then
  redis.call('ZADD', KEYS[13], 0, 'm')
end
return res
