-- W1gather: W1 as the workload defines it, the N tasks awaited with one
-- aio.gather (W1 awaits them in a loop).  Prints: RESULT <tasks/s> <peak RSS KiB>
local aio = require "luaio"
local n = tonumber(arg[1]) or 1000000
package.path = (arg[0]:match("(.*/)") or "./") .. "?.lua;" .. package.path
local peak_kb = require("procstatus").peak_kb
local sum, dt = aio.run(function()
  local t0 = aio.time()
  local tasks = {}
  for i = 1, n do
    tasks[i] = aio.create_task(function() aio.sleep(0); return i end)
  end
  local s = 0
  for _, v in ipairs(aio.gather(tasks)) do s = s + v end
  return s, aio.time() - t0
end)
assert(sum == n * (n + 1) // 2)
print(("RESULT %.0f %d"):format(n / dt, peak_kb()))
