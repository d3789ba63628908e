-- W8 (luaio): a WebSocket echo server.  luaio w8_ws_echo.lua PORT
local aio = require "luaio"
local port = tonumber(arg[1])
local server = aio.websocket.serve(function(ws)
  for msg, kind in ws:messages() do
    if kind == "text" then ws:send(msg) else ws:send_binary(msg) end
  end
end, "127.0.0.1", port)
print("ready")
io.stdout:flush()
server:serve_forever()
