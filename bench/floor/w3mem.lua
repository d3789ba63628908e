-- W3mem with bare Lua coroutines: N closures each parked in a coroutine
-- (the minimum a suspended Lua task can cost).  Prints: RESULT <bytes per task>
local n = tonumber(arg[1]) or 100000
package.path = (arg[0]:match("(.*/)") or "./") .. "../?.lua;" .. package.path
local rss_kb = require("procstatus").rss_kb
collectgarbage(); collectgarbage()
local before = rss_kb()
local cos, started = {}, 0
for i = 1, n do
  local co = coroutine.create(function() started = started + 1; coroutine.yield(10) end)
  coroutine.resume(co)
  cos[i] = co
end
assert(started == n)
collectgarbage(); collectgarbage()
print(("RESULT %.0f"):format((rss_kb() - before) * 1024 / n))
assert(#cos == n)   -- (the coroutines stay reachable through the measurement)
