-- spec/pg_spec.lua: the libpq example (examples/pg) against a real
-- PostgreSQL (Debian's postgresql) that this file starts: initdb into a
-- temporary directory (as nobody when run as root), a server listening
-- only on a unix socket there, stopped and removed in teardown -- also
-- when a test fails.  100 concurrent queries, a server error, an
-- interrupted query, a connection refused.
local aio = require "luaio"
local H = require "helper"

local BIN = "/usr/lib/postgresql/15/bin/"
local q = H.quote

local dir, pg, sudo                    -- the cluster, the module, "runuser ..."

-- Runs a shell command (as the cluster's owner when root); asserts success.
local function sh(cmd)
  local ok = os.execute(sudo .. "sh -c " .. q(cmd) .. " >>" .. q(dir .. "/spec.log") .. " 2>&1")
  assert(ok, "failed: " .. cmd .. "\n" .. H.readall(dir .. "/spec.log"))
end

local function conninfo() return ("host=%s dbname=postgres user=luaio"):format(dir) end

local function cancelled(t)
  local ok, err = pcall(aio.await, t)
  assert.is_false(ok)
  assert.is_true(aio.is(err, aio.CancelledError), tostring(err))
end

describe("examples/pg: libpq's non-blocking API on luaio_wait_fd", function()
  setup(function()
    assert(os.execute("make -s -C " .. q(H.ROOT) .. " pg-example >/dev/null"),
      "make pg-example failed")
    package.path = H.ROOT .. "/examples/pg/?.lua;" .. package.path
    package.cpath = H.ROOT .. "/build/examples/?.so;" .. package.cpath
    pg = require "pg"
    dir = H.tmpdir()
    local root = io.popen("id -u"):read("l") == "0"
    sudo = root and "runuser -u nobody -- " or ""
    if root then assert(os.execute("chown nobody " .. q(dir))) end
    sh(BIN .. "initdb -A trust -U luaio -D " .. q(dir .. "/data"))
    sh(BIN .. "pg_ctl -D " .. q(dir .. "/data") .. " -l " .. q(dir .. "/server.log")
      .. " -w -o " .. q("-k " .. dir .. " -c listen_addresses='' -c max_connections=120")
      .. " start")
  end)

  teardown(function()
    if dir then
      os.execute(sudo .. BIN .. "pg_ctl -D " .. q(dir .. "/data") .. " -m fast -w stop >/dev/null 2>&1")
      H.rmrf(dir)
    end
  end)

  it("runs 100 queries at once, overlapping in time #timing", function()
    local N, SLEEP = 100, 0.2
    H.guarded(function()
      local t0 = aio.time()
      local tasks = {}
      for n = 1, N do
        tasks[n] = aio.create_task(function()
          local conn <close> = pg.connect(conninfo())
          local rows, tag = conn:query(("SELECT pg_sleep(%g) AS slept, %d AS n"):format(SLEEP, n))
          assert.equal("SELECT 1", tag)
          return rows
        end)
      end
      for n = 1, N do
        local rows = tasks[n]:await()
        assert.equal(1, #rows)
        assert.equal(tostring(n), rows[1].n)
        assert.equal(tostring(n), rows[1][2])
        assert.equal("", rows[1].slept)     -- pg_sleep returns void
      end
      local total = aio.time() - t0
      -- one after the other they would take N * SLEEP = 20 s
      assert.is_true(total < N * SLEEP / 5, ("took %.2f s"):format(total))
      print(("\n100 concurrent pg_sleep(0.2) queries: %.3f s"):format(total))
    end, nil, 30)
  end)

  it("returns rows with NULL as pg.null, several columns and rows", function()
    H.guarded(function()
      local conn <close> = pg.connect(conninfo())
      local rows, tag = conn:query("SELECT x, NULL AS nothing FROM generate_series(1, 3) AS x")
      assert.equal("SELECT 3", tag)
      assert.equal(3, #rows)
      assert.equal("3", rows[3].x)
      assert.equal(pg.null, rows[2].nothing)
      local _, tag2 = conn:query("CREATE TEMP TABLE t (a int)")
      assert.equal("CREATE TABLE", tag2)
    end, nil, 10)
  end)

  it("raises the server's message for bad SQL; the connection stays usable", function()
    H.guarded(function()
      local conn <close> = pg.connect(conninfo())
      local err = H.errof(conn.query, conn, "SELEC 1")
      assert.equal('pg: syntax error at or near "SELEC" (SQLSTATE 42601)', err)
      err = H.errof(conn.query, conn, "SELECT 1/0")
      assert.equal("pg: division by zero (SQLSTATE 22012)", err)
      assert.equal("idle", conn:state())
      assert.equal("2", conn:query("SELECT 2 AS two")[1].two)
    end, nil, 10)
  end)

  it("a task cancelled while it waits on the socket leaves the connection unusable, never half-read", function()
    H.guarded(function()
      local conn <close> = pg.connect(conninfo())
      local t = aio.create_task(conn.query, conn, "SELECT pg_sleep(5)")
      aio.sleep(0.1)
      t:cancel()
      cancelled(t)
      assert.equal("busy", conn:state())
      assert.equal("pg: the connection is unusable: a query on it was interrupted "
        .. "(cancelled or timed out); close it", H.errof(conn.query, conn, "SELECT 1"))
      -- the same through a timeout around the query
      local c2 <close> = pg.connect(conninfo())
      local err = H.errof(aio.wait_for, function() return c2:query("SELECT pg_sleep(5)") end, 0.1)
      assert.is_true(aio.is(err, aio.TimeoutError), tostring(err))
      assert.equal("busy", c2:state())
      -- a fresh connection works; the loop is not blocked by the others
      local c3 <close> = pg.connect(conninfo())
      assert.equal("3", c3:query("SELECT 3 AS x")[1].x)
    end, nil, 10)
  end)

  it("a connection to no server fails with libpq's message", function()
    H.guarded(function()
      local err = H.errof(pg.connect, ("host=%s/nowhere dbname=postgres"):format(dir))
      assert.equal(('pg: connection to server on socket "%s/nowhere/.s.PGSQL.5432" failed: '
        .. "No such file or directory"):format(dir), err:match("^[^\n]*"))
    end)
  end)

  it("refuses to wait outside a task", function()
    local res
    H.run(function()
      res = H.in_callback(pg.connect, conninfo())
    end)
    assert.is_false(res[1])
    assert.equal("luaio_wait_fd: needs a running task (called outside a task)", res[2])
  end)
end)
