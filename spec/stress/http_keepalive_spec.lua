-- Stress (make check): an aio.http server holds 10,000 keep-alive
-- connections at once (issue 19, "Reliability").
--
-- The server runs in this process; the clients in a child luaio process
-- (each side needs a descriptor per connection: make check raises the
-- soft limit to what the hard one allows).  Each client task has its own
-- aio.http.Client (one connection) and makes REQUESTS requests on it:
-- the first by every task before any goes on (all N connections then sit
-- idle on the server, where we count them, its descriptors and its
-- memory), the others after idle gaps of 50 to 320 ms.  Every answer is
-- checked (status, body); the server counts the requests of each
-- connection (by the client's port).  Then every client closes, and the
-- server's connection count and this process's descriptors go back to
-- where they started.
local aio = require "luaio"
local H = require "helper"

local N = 10000
local REQUESTS = 4
local SPARE = 200                     -- descriptors besides the connections

local function soft_limit()
  local p = assert(io.popen("ulimit -n"))
  local s = p:read("a")
  p:close()
  if s:match("unlimited") then return math.huge end
  return tonumber(s) or 0
end

local function rss_kib()
  local f = assert(io.open("/proc/self/status"))
  local kib = tonumber(f:read("a"):match("VmRSS:%s*(%d+)"))
  f:close()
  return kib
end

local function connections(srv)
  return tonumber(tostring(srv):match("^HttpServer%((%d+) connection"))
end

local CLIENT = [[
  local aio = require "luaio"
  local port, n, requests = tonumber(arg[1]), tonumber(arg[2]), tonumber(arg[3])
  local up, ok, bad = 0, 0, nil
  local all, go = aio.Event(), aio.Event()
  aio.run(function()
    aio.TaskGroup(function(tg)
      for i = 1, n do
        tg:create_task(function()
          local c <close> = aio.http.Client { max_per_host = 1, proxy = false, timeout = 120 }
          for j = 1, requests do
            local path = ("/%d/%d"):format(i, j)
            local res = c:get(("http://127.0.0.1:%d%s"):format(port, path))
            local body = res:body()
            local s = c:stats()
            if res.status ~= 200 or body ~= "answer " .. path or s.connections ~= 1 then
              bad = bad or ("%s: %d %q, %d connections"):format(path, res.status, body, s.connections)
            end
            if j == 1 then
              up = up + 1
              if up == n then all:set() end
              go:wait()                       -- every connection is up
            else
              aio.sleep(0.05 + (i % 10) * 0.03)   -- idle on the server
            end
          end
          ok = ok + 1
        end)
        if i % 500 == 0 then aio.sleep(0) end
      end
      all:wait()
      print("HELD")
      io.stdout:flush()
      assert(io.read("l") == "GO")           -- (the tasks all wait for go)
      go:set()
    end)
  end)
  print(("DONE %d %s"):format(ok, bad or "ok"))
]]

describe("stress: aio.http keep-alive", function()
  it("a server holds 10,000 keep-alive connections, each idle between its requests", function()
    local soft = soft_limit()
    assert(soft >= N + SPARE, ("ulimit -n is %d: %d keep-alive connections need %d descriptors "
      .. "in the server and in the clients' process; raise the soft limit first "
      .. "(`ulimit -n 20000`; make check does)"):format(soft, N, N + SPARE))
    local script = H.script(CLIENT)
    local report
    H.run(function()
      H.warm_up()
      local per_port, requests = {}, 0
      local srv = aio.http.serve(function(req)
        local port = req.remote_port
        per_port[port] = (per_port[port] or 0) + 1
        requests = requests + 1
        return 200, {}, "answer " .. req.path
      end, "127.0.0.1", 0, { backlog = 4096, keepalive_timeout = 60, head_timeout = 60 })
      local _, port = srv:getsockname()
      local fds0, rss0 = H.open_fds(), rss_kib()
      local t0 = aio.time()
      local proc = aio.create_subprocess_exec(H.LUAIO, { script, tostring(port), tostring(N),
        tostring(REQUESTS) }, { stdin = aio.PIPE, stdout = aio.PIPE })
      local ok, err = pcall(aio.wait_for, function()
        assert.equal("HELD\n", proc.stdout:readline())
        local t_held = aio.time() - t0
        -- every connection up, each after its first request: idle here
        assert.equal(N, connections(srv))
        assert.equal(N, requests)
        local held_fds, held_rss = H.open_fds(), rss_kib()
        assert.is_true(held_fds >= fds0 + N, ("%d descriptors at 10k connections, %d before")
          :format(held_fds, fds0))
        proc.stdin:write("GO\n")
        proc.stdin:close()
        assert.equal(("DONE %d ok\n"):format(N), proc.stdout:read())
        assert.equal(0, proc:wait())
        local t_done = aio.time() - t0
        -- the clients closed: the server lets their connections go
        -- (at most as many as before: a descriptor some earlier spec let
        -- go without closing may be collected meanwhile)
        for _ = 1, 500 * H.SLOW do
          if connections(srv) == 0 and H.open_fds() <= fds0 then break end
          aio.sleep(0.01)
        end
        assert.equal(0, connections(srv))
        local fds1 = H.open_fds()
        assert.is_true(fds1 <= fds0, ("%d descriptors open after, %d before"):format(fds1, fds0))
        assert.equal(N * REQUESTS, requests)
        local conns = 0
        for _, count in pairs(per_port) do
          conns = conns + 1
          assert.equal(REQUESTS, count)
        end
        assert.equal(N, conns)
        report = ("%d connections held after %.1f s, all %d requests in %.1f s; "
          .. "server RSS %.0f MiB (+%.0f MiB at 10k, %.1f KiB a connection)"):format(
          N, t_held, N * REQUESTS, t_done, held_rss / 1024,
          (held_rss - rss0) / 1024, (held_rss - rss0) / N)
        -- bounded: a held keep-alive connection costs well under 20 KiB
        assert.is_true(held_rss - rss0 < N * 20, report)
        assert.is_true(t_done < 60 * H.SLOW, report)
      end, 120 * H.SLOW)
      if proc.returncode == nil then proc:kill(); proc:wait() end
      srv:close()
      srv:wait_closed()
      assert(ok, err)
    end)
    os.remove(script)
    io.stderr:write("\n  http keep-alive: ", report, "\n")
  end)
end)
