-- W3mem: N tasks sleeping 10 s; RSS growth per suspended task.
-- Prints: RESULT <bytes per task>
local aio = require "luaio"
local n = tonumber(arg[1]) or 100000
package.path = (arg[0]:match("(.*/)") or "./") .. "?.lua;" .. package.path
local rss_kb = require("procstatus").rss_kb
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
