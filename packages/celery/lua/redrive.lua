--[[
redrive: move one dead letter back to its queue, once (a second caller finds it gone).

KEYS[1]  dead list of the queue
KEYS[2]  destination list
ARGV[1]  the dead record, exactly as stored
ARGV[2]  the envelope to push
returns  1 moved, 0 gone already
]]
if redis.call('LREM', KEYS[1], 1, ARGV[1]) == 0 then return 0 end
redis.call('LPUSH', KEYS[2], ARGV[2])
return 1
