--[[
  put-schedule: compare-and-set one runtime schedule record. Every write takes the next value of one
  counter as its rev, so revs grow across all ids and the counter is the version of the whole set.

  KEYS[1]   the schedules hash (field: the schedule id; value: "<rev> <data>")
  KEYS[2]   the version counter (the rev of the latest write)
  ARGV[1]   the schedule id
  ARGV[2]   the rev the caller read (0: write only if there is no record)
  ARGV[3]   the record's data (any text)

  Returns: the new rev, or 0 when the stored rev is not ARGV[2] (nothing written)
]]
local current = redis.call('HGET', KEYS[1], ARGV[1])
local rev = 0
if current then
  rev = tonumber(string.sub(current, 1, string.find(current, ' ', 1, true) - 1))
end
if rev ~= tonumber(ARGV[2]) then
  return 0
end
local new = redis.call('INCR', KEYS[2])
redis.call('HSET', KEYS[1], ARGV[1], new .. ' ' .. ARGV[3])
return new
