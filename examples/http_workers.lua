-- http_workers.lua: an HTTP server on 2 worker processes sharing one
-- port, under a supervisor (aio.workers.run).  This same program runs in
-- every worker, where aio.workers.run(serve) calls serve().  Here the
-- supervisor also asks for a few pages itself, then stops with SIGTERM
-- (each worker drains: it stops accepting and finishes its requests).
-- With the luaio command, `luaio --workers 2 app.lua` runs a script
-- holding just serve's body.
-- expect: answered by worker [12] %(pid %d+%)
-- expect: workers stopped: status 0
local aio = require "luaio"

local function serve(port)
  local server = aio.http.serve(function()
    return 200, { ["content-type"] = "text/plain" },
      ("worker %d (pid %d)\n"):format(aio.worker_id(), aio.getpid())
  end, "127.0.0.1", port)
  server:serve_forever()                 -- returns once drained
end

-- The supervisor's own client: a few requests, each on a new connection.
local function ask(port)
  for _ = 1, 100 do                      -- until the workers listen
    local ok, _, w = pcall(aio.open_connection, "127.0.0.1", port)
    if ok then w:close() break end
    aio.sleep(0.05)
  end
  for _ = 1, 4 do
    local res = aio.http.get(("http://127.0.0.1:%d/"):format(port),
                             { headers = { connection = "close" } })
    print("answered by " .. res:body():gsub("\n$", ""))
  end
  os.execute("kill -TERM " .. aio.getpid())
end

local port = tonumber(arg[1])
if aio.worker_id() then
  aio.workers.run(function() serve(port) end)
else
  local probe = aio.start_server(function() end, "127.0.0.1", 0)
  port = select(2, probe:getsockname())
  probe:close()
  probe:wait_closed()
  aio.create_task(ask, port)
  local status = aio.workers.run(function() serve(port) end,
                                 { count = 2, args = { tostring(port) } })
  print("workers stopped: status " .. status)
end
