--[[
  set-result: store task states — each unless a SUCCESS is stored already — and announce the ready
  ones. One call stores one result, or the results a worker finished in one turn of its event loop.

  KEYS[1..n]  the result keys
  ARGV[3i+1]  the result for KEYS[i+1] as JSON; it starts with {"state":"<STATE>"
  ARGV[3i+2]  its time to live in ms (0: no expiry)
  ARGV[3i+3]  the pub/sub channel to PUBLISH the JSON on, or '' (states that are not ready)

  Returns: an array with, per key, 1 if stored, 0 if a stored SUCCESS was kept
]]
local success = '{"state":"SUCCESS"'
local res = {}
for i = 1, #KEYS do
  local json = ARGV[3 * i - 2]
  local current = redis.call('GET', KEYS[i])
  if current and string.sub(current, 1, #success) == success then
    res[i] = 0
  else
    local ttl = tonumber(ARGV[3 * i - 1])
    if ttl > 0 then
      redis.call('SET', KEYS[i], json, 'PX', ttl)
    else
      redis.call('SET', KEYS[i], json)
    end
    local channel = ARGV[3 * i]
    if channel ~= '' then
      redis.call('PUBLISH', channel, json)
    end
    res[i] = 1
  end
end
return res
