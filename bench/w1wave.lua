-- W1wave: N short-lived tasks in waves of 1,000 (spawn a wave, gather it).
-- Prints: RESULT <tasks/s>
local aio = require "luaio"
local n = tonumber(arg[1]) or 1000000
local sum, dt = aio.run(function()
  local t0, s = aio.time(), 0
  for base = 0, n - 1, 1000 do
    local tasks = {}
    for j = 1, math.min(1000, n - base) do
      local i = base + j
      tasks[j] = aio.create_task(function() aio.sleep(0); return i end)
    end
    for _, v in ipairs(aio.gather(tasks)) do s = s + v end
  end
  return s, aio.time() - t0
end)
assert(sum == n * (n + 1) // 2)
print(("RESULT %.0f"):format(n / dt))
