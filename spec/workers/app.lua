-- spec/workers/app.lua PORT: the HTTP server of spec/workers_spec.lua,
-- run by `luaio --workers N`: every answer names its worker and pid;
-- /slow?ms=N answers after N ms.
local aio = require "luaio"
local port = math.tointeger(tonumber(arg[1]))
local srv = aio.http.serve(function(req)
  local ms = req.path == "/slow" and tonumber(req.query.ms) or 0
  if ms > 0 then aio.sleep(ms / 1000) end
  return 200, { ["content-type"] = "text/plain" },
    ("%d %d\n"):format(aio.worker_id(), aio.getpid())
end, "127.0.0.1", port)
print(("ready %d/%d pid %d"):format(aio.worker_id(), aio.workers.count(), aio.getpid()))
srv:serve_forever()
