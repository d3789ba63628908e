-- W4 over TLS: the idiomatic luaio echo server with {ssl = ctx}.
-- Usage: W4_CERT=cert.pem W4_KEY=key.pem luaio w4_tls_echo.lua PORT
local aio = require "luaio"
local ctx = aio.ssl.create_default_context("client_auth")
ctx:load_cert_chain(assert(os.getenv("W4_CERT"), "W4_CERT"), assert(os.getenv("W4_KEY"), "W4_KEY"))
local server = aio.start_server(function(reader, writer)
  while true do
    local data = reader:read(65536)
    if not data then break end
    writer:write(data)
    writer:drain()
  end
  writer:close()
end, "127.0.0.1", tonumber(arg[1]) or 8443, { ssl = ctx })
print("ready")
io.stdout:flush()
server:serve_forever()
