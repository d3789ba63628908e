-- hello.lua: a few concurrent tasks.  Run: make run (or build/luaio examples/hello.lua)
local aio = require "luaio"

local START   -- set below, when the tasks are created

local function worker(name, delay, times)
  for i = 1, times do
    aio.sleep(delay)
    print(("%-6s step %d at %.2fs"):format(name, i, aio.time() - START))
  end
  return name .. " done"
end

START = aio.time()
local a = aio.create_task(worker, "fast", 0.05, 4)
local b = aio.create_task(worker, "slow", 0.12, 2)
print("started two tasks; the main chunk is a task too")
print(a:await(), b:await())

-- cancellation: a task sleeping forever is cancelled and unwinds
local sleeper = aio.create_task(function()
  local ok, err = pcall(aio.sleep, math.huge)
  print("sleeper woke:", aio.is(err, aio.CancelledError) and "cancelled" or tostring(ok))
  error(err, 0)
end)
aio.sleep(0.01)
sleeper:cancel()
print("sleeper cancelled:", pcall(sleeper.await, sleeper) == false and sleeper:cancelled())
