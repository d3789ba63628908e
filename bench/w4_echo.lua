-- W4 server: the idiomatic luaio echo server (one task per connection).
-- Usage: luaio w4_echo.lua [tls] PORT -- with "tls", over TLS (W4tls) with
-- the certificate and key files named by W4_CERT and W4_KEY.
local aio = require "luaio"
local port = tonumber(arg[#arg]) or 8888
local opts
if arg[1] == "tls" then
  local ctx = aio.ssl.create_default_context("client_auth")
  ctx:load_cert_chain(assert(os.getenv("W4_CERT"), "W4_CERT"), assert(os.getenv("W4_KEY"), "W4_KEY"))
  opts = { ssl = ctx }
end
local server = aio.start_server(function(reader, writer)
  while true do
    local data = reader:read(65536)
    if not data then break end
    writer:write(data)
    writer:drain()
  end
  writer:close()
end, "127.0.0.1", port, opts)
print("ready")
io.stdout:flush()
server:serve_forever()
