--[[
park: hold a message in kombu's unacked bookkeeping until it is due, with its index score back-dated by
the visibility timeout, so that whoever sweeps for visible messages — this package's brokers, or a
Python worker's restore_visible — puts it on its queue once it is due, and not before. Used for a
delayed publish, a nack with a delay, and a delivered message whose `eta` lies in the future.

KEYS[1]  unacked          hash
KEYS[2]  unacked_index    zset
KEYS[3]  delayed index of the queue (zset delivery_tag -> due ms)
ARGV[1]  delivery_tag
ARGV[2]  score the caller's claim has ('' for a new message: no ownership check)
ARGV[3]  new index score: (due - visibility timeout) in seconds
ARGV[4]  due, epoch ms
ARGV[5]  the unacked value to store ('' keeps the stored one)
returns  1 parked, 0 not owned any more
]]
if ARGV[2] ~= '' then
  local score = redis.call('ZSCORE', KEYS[2], ARGV[1])
  if not score or tonumber(score) ~= tonumber(ARGV[2]) then return 0 end
end
if ARGV[5] ~= '' then redis.call('HSET', KEYS[1], ARGV[1], ARGV[5]) end
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1])
redis.call('ZADD', KEYS[3], ARGV[4], ARGV[1])
return 1
