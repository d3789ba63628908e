-- W4 server: the idiomatic luaio echo server (one task per connection).
-- Usage: luaio w4_echo.lua PORT
local aio = require "luaio"
local server = aio.start_server(function(reader, writer)
  while true do
    local data = reader:read(65536)
    if not data then break end
    writer:write(data)
    writer:drain()
  end
  writer:close()
end, "127.0.0.1", tonumber(arg[1]) or 8888)
print("ready")
io.stdout:flush()
server:serve_forever()
