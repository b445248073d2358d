--[[
  ack-result: store each delivery's result, then ack it fenced by its lease — the result write and
  the ack of a task in one round trip, when the result backend is on the same server and database.
  The write is result-redis's `redis-set-result` (its lua/set-result.lua): a stored SUCCESS is kept.

  KEYS[1]        active zset (member "<token>|<priority>|<deliveries>|<id>")
  KEYS[2]        msg hash
  KEYS[2+i]      the result key of the i-th delivery
  ARGV[4i-3]     the i-th delivery's active member
  ARGV[4i-2]     its result as JSON, starting with {"state":"<STATE>"
  ARGV[4i-1]     the result's time to live in ms (0: no expiry)
  ARGV[4i]       the channel to PUBLISH the result on, or ''

  Returns: an array with, per delivery, 1 (result written, acked) or 0 (result written, but the lease
  was lost: the message was recovered for another consumer and is left alone)
]]
local success = '{"state":"SUCCESS"'
local res = {}
local ids = {}
for i = 1, #KEYS - 2 do
  local key = KEYS[2 + i]
  local json = ARGV[4 * i - 2]
  local current = redis.call('GET', key)
  if not (current and string.sub(current, 1, #success) == success) then
    local ttl = tonumber(ARGV[4 * i - 1])
    if ttl > 0 then
      redis.call('SET', key, json, 'PX', ttl)
    else
      redis.call('SET', key, json)
    end
    local channel = ARGV[4 * i]
    if channel ~= '' then
      redis.call('PUBLISH', channel, json)
    end
  end
  local member = ARGV[4 * i - 3]
  if redis.call('ZREM', KEYS[1], member) == 1 then
    res[i] = 1
    ids[#ids + 1] = string.match(member, '^%d+|%d|%d+|(.*)$')
  else
    res[i] = 0
  end
end
if #ids > 0 then
  redis.call('HDEL', KEYS[2], unpack(ids))
end
return res
