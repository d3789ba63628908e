-- spec/cosocket_redis_spec.lua: Debian's lua-nginx-redis (lua-resty-redis,
-- /usr/share/lua/5.1/nginx/redis.lua), unchanged, on aio.ngx's cosockets
-- against a real redis-server that each test starts in a temporary
-- directory (a unix socket; one test also on a loopback port) with
-- --save '' and stops after, also when the test fails.
local aio = require "luaio"
local H = require "helper"

local ngx = aio.ngx
ngx.install()      -- lua-resty-redis reads ngx.socket.tcp and unpack when loaded
package.path = "/usr/share/lua/5.1/nginx/?.lua;" .. package.path
local redis = require "redis"

-- A free loopback port (for redis-server's --port).
local function free_port()
  local srv = aio.start_server(function() end, "127.0.0.1", 0)
  local _, port = srv:getsockname()
  srv:close()
  srv:wait_closed()
  return port
end

-- Starts redis-server in dir (a new temporary one unless given) on
-- dir/redis.sock (and on tcp_port when given); returns once it answers.
local function start_redis(dir, tcp_port)
  dir = dir or H.tmpdir()
  local sock = dir .. "/redis.sock"
  local proc = aio.create_subprocess_exec("redis-server", {
    "--port", tostring(tcp_port or 0), "--bind", "127.0.0.1",
    "--unixsocket", sock, "--unixsocketperm", "700",
    "--save", "", "--appendonly", "no", "--dir", dir,
    "--logfile", dir .. "/redis.log", "--maxclients", "2000",
  }, { stdin = aio.DEVNULL, stdout = aio.DEVNULL })
  local srv = { proc = proc, dir = dir, path = "unix:" .. sock }
  for _ = 1, 500 do
    local s = ngx.socket.tcp()
    if s:connect(srv.path) then
      s:close()
      return srv
    end
    if proc.returncode then break end
    aio.sleep(0.01)
  end
  pcall(proc.kill, proc)
  proc:wait()
  error("redis-server did not start: " .. H.readall(dir .. "/redis.log"))
end

local function kill(srv)
  if srv.proc.returncode == nil then pcall(srv.proc.kill, srv.proc) end
  srv.proc:wait()
end

-- Runs fn(srv) with a fresh redis-server, stopped (and its directory
-- removed) however fn ends; the pools are closed after.
local function with_redis(fn, limit)
  H.guarded(function()
    local srv = start_redis()
    local ok, err = pcall(fn, srv)
    ngx.close_pools()
    kill(srv)
    H.rmrf(srv.dir)
    if not ok then error(err, 0) end
  end, nil, limit or 10)
end

local function connect(srv, opts)
  local red = redis:new()
  red:set_timeout(5000)
  assert.equal(1, red:connect(srv.path, opts))
  return red
end

-- the server's count of connected clients (this connection included)
local function clients(red)
  local info = assert(red:info("clients"))
  return tonumber(info:match("connected_clients:(%d+)"))
end

local function stat(red, name)
  return tonumber(assert(red:info("stats")):match(name .. ":(%d+)"))
end

describe("lua-resty-redis on cosockets", function()
  it("runs commands: set/get, incr, hmset/hgetall, ngx.null for a missing key, error replies", function()
    with_redis(function(srv)
      local red = connect(srv)
      assert.equal("OK", red:set("greeting", "hello"))
      assert.equal("hello", red:get("greeting"))
      assert.equal(ngx.null, red:get("missing"))
      assert.equal(1, red:incr("counter"))
      assert.equal(2, red:incr("counter"))
      assert.equal("OK", red:hmset("h", { a = "1", b = "2" }))
      assert.same({ a = "1", b = "2" }, red:array_to_hash(assert(red:hgetall("h"))))
      assert.same({ false, "WRONGTYPE Operation against a key holding the wrong kind of value" },
                  { red:incr("h") })
      local big = string.rep("x", 1024 * 1024) .. "\r\nend"
      assert.equal("OK", red:set("big", big))
      assert.equal(big, red:get("big"))
      assert.equal(1, red:close())
    end)
  end)

  it("works over a loopback port too", function()
    H.guarded(function()
      local port = free_port()
      local srv = start_redis(nil, port)
      local ok, err = pcall(function()
        local red = redis:new()
        assert.equal(1, red:connect("127.0.0.1", port))
        assert.equal("OK", red:set("k", "v"))
        assert.equal("v", red:get("k"))
        assert.equal(1, red:set_keepalive(1000, 5))
        assert.same({ 1, 1 }, { ngx.pool_count("127.0.0.1:" .. port) })
      end)
      ngx.close_pools()
      kill(srv)
      H.rmrf(srv.dir)
      if not ok then error(err, 0) end
    end, nil, 10)
  end)

  it("pipelines commands", function()
    with_redis(function(srv)
      local red = connect(srv)
      red:init_pipeline()
      red:set("a", "1")
      red:incr("a")
      red:get("a")
      red:get("nope")
      red:lpush("a", "x")
      local res = assert(red:commit_pipeline())
      assert.equal(5, #res)
      assert.same({ "OK", 2, "2", ngx.null }, { res[1], res[2], res[3], res[4] })
      assert.same({ false, "WRONGTYPE Operation against a key holding the wrong kind of value" }, res[5])
      assert.same({ nil, "no pipeline" }, { red:commit_pipeline() })
      red:close()
    end)
  end)

  it("subscribes in one task and publishes from another", function()
    with_redis(function(srv)
      local subscribed = aio.Event()
      local sub = aio.create_task(function()
        local red = connect(srv)
        assert.same({ "subscribe", "news", 1 }, red:subscribe("news"))
        subscribed:set()
        local got = {}
        for _ = 1, 2 do got[#got + 1] = assert(red:read_reply()) end
        assert.same({ nil, "subscribed state" }, { red:set_keepalive() })
        red:close()
        return got
      end)
      subscribed:wait()
      local red = connect(srv)
      assert.equal(1, red:publish("news", "first"))
      assert.equal(1, red:publish("news", "second"))
      red:close()
      assert.same({ { "message", "news", "first" }, { "message", "news", "second" } },
                  aio.await(sub))
    end)
  end)

  it("reuses pooled connections (get_reused_times() > 0)", function()
    with_redis(function(srv)
      local red = connect(srv)
      assert.equal(0, red:get_reused_times())
      assert.equal(1, red:set_keepalive(10000, 20))
      for i = 1, 3 do
        red = connect(srv)
        assert.equal(i, red:get_reused_times())
        assert.equal(1, clients(red))
        assert.equal(1, red:set_keepalive(10000, 20))
      end
    end)
  end)

  it("1,000 concurrent tasks share a pool of 20: never more than 20 connections", function()
    with_redis(function(srv)
      local monitor = connect(srv, { pool = "monitor" })
      local before = stat(monitor, "total_connections_received")
      local opts = { pool_size = 20, backlog = 1000 }
      local peak, running = 0, true
      local watch = aio.create_task(function()
        while running do
          peak = math.max(peak, clients(monitor) - 1)
          aio.sleep(0.002)
        end
      end)
      local tasks = {}
      local t0 = aio.time()
      for i = 1, 1000 do
        tasks[i] = aio.create_task(function()
          local red = connect(srv, opts)
          assert.equal(i, tonumber(red:incr("k" .. i)) * i)
          assert.equal("OK", red:set("v" .. i, i))
          assert(red:incr("total"))
          assert.equal(1, red:set_keepalive(10000, 20))
        end)
      end
      aio.gather(tasks)
      local elapsed = aio.time() - t0
      running = false
      aio.await(watch)
      assert.equal("1000", monitor:get("total"))
      local opened = stat(monitor, "total_connections_received") - before
      assert.is_true(opened <= 20, "connections opened: " .. opened)
      assert.is_true(peak <= 20 and peak > 1, "peak connections: " .. peak)
      assert.same({ 20, 20 }, { ngx.pool_count(srv.path) })
      io.stderr:write(("\n  [1,000 tasks, pool of 20: %d connections opened, peak %d, %.0f ms]\n")
        :format(opened, peak, elapsed * 1000))
      monitor:close()
    end, 30)
  end)

  it("a server that vanishes mid-call: nil, 'closed'; the pool hands out no broken connection", function()
    H.guarded(function()
      local srv = start_redis()
      local ok, err = pcall(function()
        -- three idle connections in the pool, one blocked in BLPOP
        local reds = {}
        for i = 1, 3 do reds[i] = connect(srv) end
        for i = 1, 3 do assert.equal(1, reds[i]:set_keepalive(10000, 20)) end
        assert.same({ 3, 3 }, { ngx.pool_count(srv.path) })
        local blocked = connect(srv)
        local t = aio.create_task(function() return blocked:blpop("queue", 0) end)
        aio.sleep(0.05)
        kill(srv)
        assert.same({ nil, "closed" }, { aio.await(t) })
        assert.same({ nil, "closed" }, { blocked:set_keepalive() })
        -- the same socket path, a new server: no connection of the old one
        srv = start_redis(srv.dir)
        local red = connect(srv)
        assert.equal(0, red:get_reused_times())
        assert.equal("PONG", red:ping())
        assert.equal(1, red:set_keepalive(10000, 20))
        assert.same({ 1, 1 }, { ngx.pool_count(srv.path) })
      end)
      ngx.close_pools()
      kill(srv)
      H.rmrf(srv.dir)
      if not ok then error(err, 0) end
    end, nil, 10)
  end)

  it("a server that vanishes mid-reply (half a bulk string): nil, 'closed', nothing pooled", function()
    H.closes_fds(function()
      local dir = H.tmpdir()
      local path = dir .. "/fake.sock"
      local srv = aio.start_unix_server(function(r, w)
        r:readuntil("\r\nk\r\n")               -- GET k
        w:write("$10\r\nhello")
      end, path)
      local red = redis:new()
      assert.equal(1, red:connect("unix:" .. path))
      assert.same({ nil, "closed" }, { red:get("k") })
      assert.same({ nil, "closed" }, { red:set_keepalive() })
      assert.same({ 0, 0 }, { ngx.pool_count("unix:" .. path) })
      srv:close()
      srv:wait_closed()
      H.rmrf(dir)
    end, 5, H.warm_up)
  end)

  it("times out a blocked call: BLPOP with set_timeout(100) -> nil, 'timeout'", function()
    with_redis(function(srv)
      local monitor = connect(srv, { pool = "monitor" })
      local red = connect(srv)
      red:set_timeout(100)
      local t0 = aio.time()
      assert.same({ nil, "timeout" }, { red:blpop("empty", 0) })
      local dt = aio.time() - t0
      assert.is_true(dt >= 0.09 and dt < 2, tostring(dt))   -- (BLPOP 0 waits forever)
      -- lua-resty-redis closes a timed-out connection; it is never pooled
      assert.same({ nil, "closed" }, { red:set_keepalive() })
      assert.same({ 0, 0 }, { ngx.pool_count(srv.path) })
      for _ = 1, 100 do
        if clients(monitor) == 1 then break end
        aio.sleep(0.01)
      end
      assert.equal(1, clients(monitor))
      monitor:close()
    end)
  end)

  it("cancelling a task blocked in a receive closes its connection, never pools it", function()
    with_redis(function(srv)
      local monitor = connect(srv, { pool = "monitor" })
      local red = connect(srv)
      local t = aio.create_task(function() return red:blpop("empty", 0) end)
      aio.sleep(0.05)
      assert.equal(2, clients(monitor))
      t:cancel()
      assert.is_true(aio.is(H.errof(aio.await, t), aio.CancelledError))
      assert.same({ nil, "closed" }, { red:set_keepalive() })
      assert.same({ 0, 0 }, { ngx.pool_count(srv.path) })
      for _ = 1, 100 do
        if clients(monitor) == 1 then break end
        aio.sleep(0.01)
      end
      assert.equal(1, clients(monitor))
      -- a fresh connection works
      red = connect(srv)
      assert.equal(0, red:get_reused_times())
      assert.equal("PONG", red:ping())
      red:close()
      monitor:close()
    end)
  end)
end)
