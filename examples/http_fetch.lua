-- http_fetch.lua: fetch many URLs concurrently with aio.http -- at most
-- LIMIT at a time (a Semaphore), each request under its own timeout and
-- the whole run under one deadline (aio.timeout), over one Client whose
-- pool keeps the connections alive between requests.
--
--   luaio examples/http_fetch.lua URL...   fetch these
--   luaio examples/http_fetch.lua          self-test: a small HTTP server
--                                          (written with luaio's streams)
--                                          serves 12 pages, 2 of them
--                                          too slow
-- expect: fetched 10 pages %(%d+ bytes%), 2 timed out, at most 4 at once
local aio = require "luaio"

local LIMIT = 4              -- requests in flight at once
local TIMEOUT = 0.5          -- seconds per request (connect to response head)
local DEADLINE = 5           -- seconds for everything

-- A minimal HTTP/1.1 server for the self-test: GET /page/N answers after
-- N * 5 ms with a body of N lines; connections are kept alive.
local function serve_pages()
  local server = aio.start_server(function(reader, writer)
    while true do
      local ok, head = pcall(reader.readuntil, reader, "\r\n\r\n")
      if not ok then return end                  -- the client went away
      local n = tonumber(head:match("^GET /page/(%d+) ")) or 0
      aio.sleep(n * 0.005)
      local body = ("line of page %d\n"):format(n):rep(n)
      writer:write(("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n" ..
        "Content-Length: %d\r\n\r\n%s"):format(#body, body))
      if not pcall(writer.drain, writer) then return end
    end
  end, "127.0.0.1", 0)
  local _, port = server:getsockname()
  local urls = {}
  for _, n in ipairs { 1, 2, 3, 4, 200, 5, 6, 7, 300, 8, 9, 10 } do   -- 200, 300: too slow
    urls[#urls + 1] = ("http://127.0.0.1:%d/page/%d"):format(port, n)
  end
  return server, urls
end

local server, urls
if #arg > 0 then
  urls = arg
else
  server, urls = serve_pages()
end

local client <close> = aio.http.Client { timeout = TIMEOUT }
local limit = aio.Semaphore(LIMIT)
local active, peak = 0, 0
local fetched, bytes, timeouts, failed = 0, 0, 0, 0

local function fetch(url)
  local _ <close> = limit:acquire()
  active = active + 1
  peak = math.max(peak, active)
  local ok, err = pcall(function()
    local res = client:get(url)
    local body = res:body()
    print(("%d %s  %s (%d bytes)"):format(res.status, res.reason, url, #body))
    fetched, bytes = fetched + 1, bytes + #body
  end)
  active = active - 1
  if ok then return end
  if aio.is(err, aio.CancelledError) then error(err, 0) end
  if aio.is(err, aio.TimeoutError) then
    timeouts = timeouts + 1
    print("timeout  " .. url)
  else
    failed = failed + 1
    print("failed   " .. url .. ": " .. tostring(err))
  end
end

local ok, err = pcall(aio.timeout, DEADLINE, function()
  aio.TaskGroup(function(tg)
    for _, url in ipairs(urls) do tg:create_task(fetch, url) end
  end)
end)
if not ok then
  if not aio.is(err, aio.TimeoutError) then error(err, 0) end
  print(("the deadline (%g s) passed: the fetches still running were cancelled"):format(DEADLINE))
end
print(("fetched %d pages (%d bytes), %d timed out, at most %d at once%s"):format(
  fetched, bytes, timeouts, peak, failed > 0 and (", " .. failed .. " failed") or ""))
if server then
  client:close()
  server:close()
end
