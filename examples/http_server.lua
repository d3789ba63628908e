-- http_server.lua: an HTTP server with aio.http.serve -- a few routes, a
-- streaming response (server-sent events) and a graceful shutdown on
-- SIGINT or SIGTERM: the requests in flight finish, idle connections
-- close, nothing new is accepted.
--   build/luaio examples/http_server.lua 8080      # then, elsewhere:
--   curl 'http://127.0.0.1:8080/hello?name=you'
--   curl -d 'some text' http://127.0.0.1:8080/echo
--   curl -N http://127.0.0.1:8080/events
-- Without a port it runs a short self-test against itself (a slow request
-- in flight while it sends itself SIGTERM) and exits.
-- expect: GET /hello%?name=Lua %-> 200 Hello, Lua!
-- expect: POST /echo %-> 200 ping
-- expect: GET /nowhere %-> 404 no route for /nowhere
-- expect: event: tick 1
-- expect: event: tick 3
-- expect: got SIGTERM: finishing the requests in flight
-- expect: GET /slow %-> 200 slow but finished %(Connection: close%)
-- expect: server closed
local aio = require "luaio"

------------------------------------------------------------------ routes
local TEXT = { ["Content-Type"] = "text/plain; charset=utf-8" }
local routes = {}

routes["/hello"] = function(req)
  return 200, TEXT, "Hello, " .. (req.query.name or "world") .. "!\n"
end

routes["/echo"] = function(req)
  if req.method ~= "POST" then return 405, { Allow = "POST" }, "POST only\n" end
  local kind = req.headers:get("Content-Type") or "application/octet-stream"
  return 200, { ["Content-Type"] = kind }, req:body()
end

-- Server-sent events: one every 0.1 s, written as they come (chunked).
routes["/events"] = function(req, res)
  res:write_head(200, { ["Content-Type"] = "text/event-stream", ["Cache-Control"] = "no-cache" })
  for i = 1, tonumber(req.query.n) or 10 do
    res:write("data: tick " .. i .. "\n\n")
    res:drain()                        -- a slow reader slows us down
    aio.sleep(0.1)
  end
  res:finish()
end

routes["/slow"] = function()
  aio.sleep(0.3)
  return 200, TEXT, "slow but finished\n"
end

local function handler(req, res)
  local route = routes[req.path]
  if route then return route(req, res) end
  return 404, TEXT, "no route for " .. req.path .. "\n"
end

------------------------------------------------------------------ serving
local function start(port)
  local server = aio.http.serve(handler, "127.0.0.1", port)
  local loop = aio.get_running_loop()
  local function stop(name)
    print("got " .. name .. ": finishing the requests in flight")
    loop:remove_signal_handler("SIGINT")
    loop:remove_signal_handler("SIGTERM")
    server:close(5)                    -- what still runs after 5 s is cancelled
  end
  loop:add_signal_handler("SIGINT", stop, "SIGINT")
  loop:add_signal_handler("SIGTERM", stop, "SIGTERM")
  return server
end

if arg[1] then
  local server = start(tonumber(arg[1]))
  print("serving on http://127.0.0.1:" .. select(2, server:getsockname()))
  server:serve_forever()               -- returns once close() was called
  server:wait_closed()
  print("server closed")
  return
end

------------------------------------------------------------------ self-test
local server = start(0)
local _, port = server:getsockname()

-- A one-request client over a raw connection: -> status, body, head.
local function request(method, path, body)
  local r, w = aio.open_connection("127.0.0.1", port)
  w:write(("%s %s HTTP/1.1\r\nHost: localhost\r\nContent-Length: %d\r\n\r\n%s")
    :format(method, path, body and #body or 0, body or ""))
  local head = r:readuntil("\r\n\r\n")
  local length = tonumber(head:match("\r\nContent%-Length: (%d+)"))
  local text = r:readexactly(length)
  w:close()
  return tonumber(head:match("^HTTP/1%.1 (%d+)")), text, head
end

local function show(method, path, body)
  local status, text, head = request(method, path, body)
  local close = head:find("\r\nConnection: close\r\n", 1, true) and " (Connection: close)" or ""
  print(("%s %s -> %d %s%s"):format(method, path, status, text:gsub("\n$", ""), close))
end

show("GET", "/hello?name=Lua")
show("POST", "/echo", "ping")
show("GET", "/nowhere")

-- the events, read as they arrive (each is a chunk: size line, data, CRLF)
local r, w = aio.open_connection("127.0.0.1", port)
w:write("GET /events?n=3 HTTP/1.1\r\nHost: localhost\r\n\r\n")
r:readuntil("\r\n\r\n")
while true do
  local size = tonumber(r:readline(), 16)
  if size == 0 then break end
  local event = r:readexactly(size + 2)
  io.write("event: ", event:match("^data: (.-)\n"), "\n")
end
w:close()

-- a slow request in flight when SIGTERM comes: it finishes, then all closes
local slow = aio.create_task(show, "GET", "/slow")
aio.sleep(0.1)
local stat = assert(io.open("/proc/self/stat"))
local pid = stat:read("n")
stat:close()
aio.create_subprocess_exec("kill", { "-TERM", tostring(pid) }):wait()
slow:await()
server:wait_closed()
print("server closed")
