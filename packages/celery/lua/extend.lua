--[[
extend: renew the lease of a delivery the caller still holds (kombu has no lease renewal; a Python
worker's sweep sees the new score and leaves the delivery alone).

KEYS[1]  unacked_index    zset
ARGV[1]  delivery_tag
ARGV[2]  the score of the caller's claim or last extension
ARGV[3]  new score: now, in seconds
returns  1 renewed, 0 not owned any more
]]
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not score or tonumber(score) ~= tonumber(ARGV[2]) then return 0 end
redis.call('ZADD', KEYS[1], 'XX', ARGV[3], ARGV[1])
return 1
