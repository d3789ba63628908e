-- The soak's server (bench/soak.sh): W6's "hello world" (w6_hello.lua),
-- and /mem: this worker's live Lua heap, after two full collections, as
-- "worker-id KiB".  soak_app.lua PORT, under luaio --workers N.
local aio = require "luaio"
local port = tonumber(arg[1])
local HEADERS = { ["Content-Type"] = "text/plain" }
local server = aio.http.serve(function(req)
  if req.path == "/mem" then
    collectgarbage("collect")
    collectgarbage("collect")
    return 200, HEADERS, ("%d %d"):format(aio.worker_id() or 0, math.floor(collectgarbage("count")))
  end
  return 200, HEADERS, "Hello, World!"
end, "127.0.0.1", port)
io.write("ready\n")
io.stdout:flush()
server:serve_forever()
