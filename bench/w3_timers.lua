-- W3: N tasks each sleep a seeded random delay in [0, 1 s]; gather them.
-- Prints: RESULT <overhead seconds> <peak RSS KiB>
local aio = require "luaio"
local n = tonumber(arg[1]) or 100000
math.randomseed(42)
local delays, maxd = {}, 0
for i = 1, n do delays[i] = math.random(); if delays[i] > maxd then maxd = delays[i] end end
package.path = (arg[0]:match("(.*/)") or "./") .. "?.lua;" .. package.path
local peak_kb = require("procstatus").peak_kb
local dt = aio.run(function()
  local t0 = aio.time()
  local tasks = {}
  for i = 1, n do
    local d = delays[i]
    tasks[i] = aio.create_task(function() aio.sleep(d) end)
  end
  aio.gather(tasks)
  return aio.time() - t0
end)
print(("RESULT %.4f %d"):format(dt - maxd, peak_kb()))
