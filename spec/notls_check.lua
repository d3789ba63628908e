-- spec/notls_check.lua: run by `make test` with a CLI built with TLS=0.
-- In a build without OpenSSL every TLS entry point raises a clear
-- "built without TLS" error; plain streams work as ever.
local aio = require "luaio"

local function raises(pattern, f, ...)
  local ok, err = pcall(f, ...)
  assert(not ok, "expected an error matching " .. pattern)
  assert(tostring(err):find(pattern), ("error %q does not match %q"):format(tostring(err), pattern))
end

assert(aio.ssl.HAS_TLS == false, "aio.ssl.HAS_TLS should be false")
raises("built without TLS", aio.ssl.create_default_context)
raises("built without TLS", aio.ssl.SSLContext, "server")
assert(aio.ssl.is_context({}) == false)

local server <close> = aio.start_server(function(r, w)
  w:write(r:readline())
  w:close()
end, "127.0.0.1", 0)
local _, port = server:getsockname()
raises("open_connection: TLS is not available in this build %(built without TLS%)",
       aio.open_connection, "127.0.0.1", port, { ssl = true })
raises("start_server: TLS is not available in this build %(built without TLS%)",
       aio.start_server, function() end, "127.0.0.1", 0, { ssl = {} })
local r, w = aio.open_connection("127.0.0.1", port)
raises("start_tls: TLS is not available in this build %(built without TLS%)",
       w.start_tls, w, {})
assert(w:can_write_eof())
w:write("plain still works\n")
assert(r:readline() == "plain still works\n")
w:close()
print("built without TLS: ok")
