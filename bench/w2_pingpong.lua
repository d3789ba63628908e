-- W2: two tasks bounce an integer through two Queue(1); N round trips.
-- Prints: RESULT <switches/s>  (2 switches per round trip)
local aio = require "luaio"
local n = tonumber(arg[1]) or 1000000
local v, dt = aio.run(function()
  local t0 = aio.time()
  local a, q = aio.Queue(1), aio.Queue(1)
  local res = aio.gather({
    function() local x = 0; for _ = 1, n do a:put(x); x = q:get() end; return x end,
    function() for _ = 1, n do local x = a:get(); q:put(x + 1) end; return 0 end,
  })
  return res[1], aio.time() - t0
end)
assert(v == n)
print(("RESULT %.0f"):format(2 * n / dt))
