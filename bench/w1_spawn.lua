-- W1: spawn N tasks that each sleep(0) once and return i; wait for all
-- (awaiting each in a loop, or with one aio.gather when the second argument
-- is "gather": W1gather); check the sum.
-- Prints: RESULT <tasks/s> <peak RSS KiB>
local aio = require "luaio"
local n = tonumber(arg[1]) or 100000
local gather = arg[2] == "gather"
package.path = (arg[0]:match("(.*/)") or "./") .. "?.lua;" .. package.path
local peak_kb = require("procstatus").peak_kb
local sum, dt = aio.run(function()
  local t0 = aio.time()
  local tasks = {}
  for i = 1, n do
    tasks[i] = aio.create_task(function() aio.sleep(0); return i end)
  end
  local s = 0
  if gather then
    for _, v in ipairs(aio.gather(tasks)) do s = s + v end
  else
    for i = 1, n do s = s + tasks[i]:await() end
  end
  return s, aio.time() - t0
end)
assert(sum == n * (n + 1) // 2)
print(("RESULT %.0f %d"):format(n / dt, peak_kb()))
