--[[
  set-result: store task states — each unless a SUCCESS is stored already — and announce the ready
  ones. One call stores one result, or the results a worker finished in one turn of its event loop.

  KEYS[1..n]  the result keys
  ARGV[1]     one line per key, in order, joined by "\n": "<ttl ms>\t<1: PUBLISH it on the key's
              name, 0: not (states that are not ready)>\t<the result as JSON>". The JSON starts with
              {"state":"<STATE>" and holds no raw newline or tab (JSON escapes them). One argument
              rather than three per result: the client builds and sends one string instead of
              hundreds of small ones.

  Returns: an array with, per key, 1 if stored, 0 if a stored SUCCESS was kept
]]
local success = '{"state":"SUCCESS"'
local lines = ARGV[1]
local res = {}
local pos = 1
for i = 1, #KEYS do
  local tab = string.find(lines, '\t', pos, true)
  local nl = string.find(lines, '\n', tab, true) or (#lines + 1)
  local ttl = tonumber(string.sub(lines, pos, tab - 1))
  local announce = string.byte(lines, tab + 1) == 49 -- '1'
  local json = string.sub(lines, tab + 3, nl - 1)
  pos = nl + 1
  local current = redis.call('GET', KEYS[i])
  if current and string.sub(current, 1, #success) == success then
    res[i] = 0
  else
    if ttl > 0 then
      redis.call('SET', KEYS[i], json, 'PX', ttl)
    else
      redis.call('SET', KEYS[i], json)
    end
    if announce then
      redis.call('PUBLISH', KEYS[i], json)
    end
    res[i] = 1
  end
end
return res
