--[[
set-result: store a Celery result (`celery-task-meta-<id>`) and announce it, as Celery's Redis backend
does (SETEX + PUBLISH on the key's name), except that the "never overwrite SUCCESS" check Celery makes
with a separate read happens in the same step.

KEYS[1]  the result key
ARGV[1]  the JSON value
ARGV[2]  time to live in ms (0: no expiry)
returns  1 stored, 0 a SUCCESS was stored already
]]
local cur = redis.call('GET', KEYS[1])
if cur then
  local ok, meta = pcall(cjson.decode, cur)
  if ok and type(meta) == 'table' and meta.status == 'SUCCESS' then return 0 end
end
if tonumber(ARGV[2]) > 0 then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
else
  redis.call('SET', KEYS[1], ARGV[1])
end
redis.call('PUBLISH', KEYS[1], ARGV[1])
return 1
