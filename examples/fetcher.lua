-- fetcher.lua: fetch many "pages" from a local server concurrently, at most
-- 4 at a time (a Semaphore), each under a timeout, collecting failures.
-- expect: fetched 9 pages, 2 timed out
local aio = require "luaio"

-- A tiny line-protocol server standing in for the web: "GET n" -> a body
-- after n * 5 ms.
local server <close> = aio.start_server(function(reader, writer)
  local line = reader:readline()
  local n = tonumber(line and line:match("^GET (%d+)")) or 0
  aio.sleep(n * 0.005)
  writer:write(("page %d: %s\n"):format(n, ("x"):rep(n)))
  writer:close()
end, "127.0.0.1", 0)
local _, port = server:getsockname()

local limit = aio.Semaphore(4)
local active, peak = 0, 0

local function fetch(n)
  local _ <close> = limit:acquire()
  active = active + 1
  peak = math.max(peak, active)
  local ok, body = pcall(aio.wait_for, function()
    local reader, writer = aio.open_connection("127.0.0.1", port)
    writer:write(("GET %d\n"):format(n))
    local body = reader:read()
    writer:close()
    return body
  end, 0.1)
  active = active - 1
  if not ok then
    if aio.is(body, aio.TimeoutError) then return nil, "timeout" end
    error(body, 0)
  end
  return body
end

local pages = { 1, 2, 3, 4, 30, 5, 6, 7, 40, 8, 9 }   -- 30 and 40 are too slow
local fetched, timeouts = 0, 0
aio.TaskGroup(function(tg)
  for _, n in ipairs(pages) do
    tg:create_task(function()
      local body = fetch(n)
      if body then fetched = fetched + 1 else timeouts = timeouts + 1 end
    end)
  end
end)
print(("fetched %d pages, %d timed out, at most %d at once"):format(fetched, timeouts, peak))
