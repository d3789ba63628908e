-- echo.lua: a TCP echo server and a client talking to it.
--   build/luaio examples/echo.lua           # demo: server + client in one run
--   build/luaio examples/echo.lua serve 8888   # just the server; try: nc 127.0.0.1 8888
-- expect: client got: hello, world
local aio = require "luaio"

local function handle(reader, writer)
  local host, port = writer:get_extra_info("peername")
  for line in reader:lines() do        -- until the client closes
    writer:write(line .. "\n")
    writer:drain()                     -- backpressure: wait if the peer is slow
  end
  writer:close()
  print(("connection from %s:%d closed"):format(host, port))
end

if arg[1] == "serve" then
  local server = aio.start_server(handle, "127.0.0.1", tonumber(arg[2]) or 8888)
  print("echo server on " .. table.concat({ server:getsockname() }, ":"))
  server:serve_forever()               -- Ctrl-C cancels it and closes the server
  return
end

local server <close> = aio.start_server(handle, "127.0.0.1", 0)
local _, port = server:getsockname()
local reader, writer = aio.open_connection("127.0.0.1", port)
for _, msg in ipairs { "hello, world", "second line" } do
  writer:write(msg .. "\n")
  print("client got: " .. reader:readline():sub(1, -2))
end
writer:close()
writer:wait_closed()
