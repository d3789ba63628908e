-- taskgroup.lua: structured concurrency with timeouts.
-- Fetches "pages" (simulated with sleeps) in a TaskGroup under a deadline,
-- then gathers with return_exceptions, then races with wait().
local aio = require "luaio"

local function fetch(name, delay)
  aio.sleep(delay)
  if name == "broken" then error("cannot fetch " .. name, 0) end
  return name .. ":" .. math.floor(delay * 1000) .. "ms"
end

-- 1. A task group: every child finishes before the block ends.
local results = {}
do
  local tg <close> = aio.TaskGroup()
  for i, d in ipairs { 0.03, 0.01, 0.02 } do
    tg:create_task(function() results[i] = fetch("page" .. i, d) end)
  end
end
print("group: " .. table.concat(results, " "))

-- 2. A failure cancels the siblings and comes back as an ExceptionGroup.
local ok, eg = pcall(aio.TaskGroup, function(tg)
  tg:create_task(fetch, "broken", 0.01)
  tg:create_task(fetch, "slow", 10)
end)
print("failed: " .. tostring(not ok) .. ", " .. tostring(eg.exceptions[1]))

-- 3. A timeout scope around slow work.
ok = pcall(aio.timeout, 0.05, function() fetch("slow", 10) end)
print("timed out: " .. tostring(not ok))

-- 4. gather keeps going past errors when asked to.
local r = aio.gather({ function() return fetch("a", 0.01) end,
                       function() return fetch("broken", 0.01) end },
                     { return_exceptions = true })
print("gather: " .. r[1] .. " | " .. r[2])

-- 5. wait() for the first of several, then cancel the rest.
local racers = {}
for i, d in ipairs { 0.04, 0.01, 0.03 } do racers[i] = aio.create_task(fetch, "r" .. i, d) end
local done, pending = aio.wait(racers, { return_when = aio.FIRST_COMPLETED })
print("first: " .. done[1]:result() .. ", still running: " .. #pending)
for _, t in ipairs(pending) do t:cancel() end
aio.wait(pending)
