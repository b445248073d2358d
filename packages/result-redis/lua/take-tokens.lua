--[[
  take-tokens: take one token from a bucket of ARGV[1] tokens that refills continuously over
  ARGV[2] ms, on the server's clock (every client shares the bucket, whatever its own clock says).

  KEYS[1]   the bucket hash (fields: tokens, at)
  ARGV[1]   limit: the bucket's size and the tokens added per window
  ARGV[2]   the window in ms

  Returns: { 1, 0 } if a token was taken, or { 0, ms until a token will be there }
]]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local rate = limit / window
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1])
local at = tonumber(state[2])
if tokens == nil or at == nil then
  tokens = limit
  at = now
end
tokens = math.min(limit, tokens + math.max(0, now - at) * rate)
local ok = 0
local retry = 0
if tokens >= 1 then
  tokens = tokens - 1
  ok = 1
else
  retry = math.max(1, math.ceil((1 - tokens) / rate))
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', now)
redis.call('PEXPIRE', KEYS[1], math.ceil(window * 2))
return { ok, retry }
