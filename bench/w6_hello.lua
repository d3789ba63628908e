-- W6 (luaio): an HTTP "hello world" server.  w6_hello.lua PORT
-- Prints "ready" once listening; serves until killed.
local aio = require "luaio"
local port = tonumber(arg[1])
local HEADERS = { ["Content-Type"] = "text/plain" }
aio.run(function()
  local server = aio.http.serve(function()
    return 200, HEADERS, "Hello, World!"
  end, "127.0.0.1", port)
  io.write("ready\n")
  io.stdout:flush()
  server:serve_forever()
end)
