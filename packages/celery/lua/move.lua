--[[
move: take one delivery out of kombu's unacked bookkeeping and push a message somewhere — if, and only
if, the caller still owns it. Used for ack (no push), nack with requeue, dead-lettering, giving back,
restoring a dead consumer's delivery and promoting a due delayed message.

KEYS[1]  unacked          hash
KEYS[2]  unacked_index    zset
KEYS[3]  delayed index of the queue (zset delivery_tag -> due ms), cleaned too
KEYS[4]  destination list (ignored when ARGV[5] is 'none')
ARGV[1]  delivery_tag
ARGV[2]  'eq': the index score must equal ARGV[3] (the caller's own claim or extension)
         'le': the index score must be <= ARGV[3] (visible again: restore / promote)
ARGV[3]  score (seconds)
ARGV[4]  the unacked value the caller read, or '' to skip that check
ARGV[5]  'left' (LPUSH, the back of the line), 'right' (RPUSH, delivered next) or 'none'
ARGV[6]  what to push
ARGV[7]  what to push instead when the tag is in the delayed index ('' = ARGV[6])
returns  1 moved, 0 not owned any more (acked, restored or re-claimed elsewhere)
]]
local score = redis.call('ZSCORE', KEYS[2], ARGV[1])
if not score then return 0 end
local s = tonumber(score)
local want = tonumber(ARGV[3])
if ARGV[2] == 'eq' then
  if s ~= want then return 0 end
elseif s > want then
  return 0
end
if ARGV[4] ~= '' then
  local cur = redis.call('HGET', KEYS[1], ARGV[1])
  if cur ~= ARGV[4] then return 0 end
end
local delayed = redis.call('ZSCORE', KEYS[3], ARGV[1])
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
if delayed then redis.call('ZREM', KEYS[3], ARGV[1]) end
local value = ARGV[6]
if delayed and ARGV[7] ~= '' then value = ARGV[7] end
if ARGV[5] == 'left' then
  redis.call('LPUSH', KEYS[4], value)
elseif ARGV[5] == 'right' then
  redis.call('RPUSH', KEYS[4], value)
end
return 1
