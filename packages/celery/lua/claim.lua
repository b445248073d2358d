--[[
claim: take up to ARGV[2] messages from a queue's kombu lists, in priority order, and record each in
kombu's unacked bookkeeping in the same step (kombu does BRPOP, then a second round trip; a crash in
between loses the message — here there is no in between).

KEYS[1]  unacked          hash  delivery_tag -> JSON [message, exchange, routing_key]
KEYS[2]  unacked_index    zset  delivery_tag -> time of delivery (seconds)
KEYS[3]  dead list of the queue (where an item that is not a kombu message goes)
KEYS[4..] the queue's lists, most urgent first (queue, queue\x06\x163, queue\x06\x166, queue\x06\x169)
ARGV[1]  score: now, in seconds
ARGV[2]  how many to claim at most
ARGV[3]  now in ms (for a dead record)
returns  the claimed envelopes (JSON strings), in delivery order
]]
local out = {}
local want = tonumber(ARGV[2])
local nlists = #KEYS - 3
local i = 1
while #out < want and i <= nlists do
  local v = redis.call('RPOP', KEYS[3 + i])
  if not v then
    i = i + 1
  else
    local ok, env = pcall(cjson.decode, v)
    local tag, ex, rk
    if ok and type(env) == 'table' and type(env.properties) == 'table' then
      tag = env.properties.delivery_tag
      local info = env.properties.delivery_info
      if type(info) == 'table' then
        ex = info.exchange
        rk = info.routing_key
      end
    end
    if type(tag) ~= 'string' or tag == '' then
      redis.call('LPUSH', KEYS[3], cjson.encode({ reason = 'ERR_SERIALIZATION: not a kombu message', deadAt = tonumber(ARGV[3]), message = v }))
    else
      if type(ex) ~= 'string' then ex = '' end
      if type(rk) ~= 'string' then rk = '' end
      redis.call('HSET', KEYS[1], tag, '[' .. v .. ', ' .. cjson.encode(ex) .. ', ' .. cjson.encode(rk) .. ']')
      redis.call('ZADD', KEYS[2], ARGV[1], tag)
      out[#out + 1] = v
    end
  end
end
return out
