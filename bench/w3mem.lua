-- W3mem: N tasks sleeping 10 s; RSS growth per suspended task.
-- Prints: RESULT <bytes per task>
local aio = require "luaio"
local n = tonumber(arg[1]) or 100000
local function rss_kb()
  local f = io.open("/proc/self/status")
  local s = f and f:read("a") or ""
  if f then f:close() end
  return tonumber(s:match("VmRSS:%s+(%d+)")) or -1
end
aio.run(function()
  collectgarbage(); collectgarbage()
  local before = rss_kb()
  local started = 0
  for _ = 1, n do
    aio.create_task(function() started = started + 1; aio.sleep(10) end)
  end
  while started < n do aio.sleep(0.01) end
  collectgarbage(); collectgarbage()
  print(("RESULT %.0f"):format((rss_kb() - before) * 1024 / n))
  io.stdout:flush()
  os.exit(0)
end)
