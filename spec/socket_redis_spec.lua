-- spec/socket_redis_spec.lua: a LuaSocket driver run unchanged over
-- aio.socket -- Debian's lua-redis (redis-lua) against a real
-- redis-server that the spec starts in a temporary directory (a unix
-- socket and a loopback port) and stops after: many tasks at once, a
-- timeout, and a server that vanishes.  (lua-redis is packaged for Lua
-- 5.1-5.3 only; it is plain Lua and runs on 5.4 but for its pipeline,
-- whose table.insert at a position 5.4 refuses.)
local aio = require "luaio"
local socket = require "luaio.socket"
local H = require "helper"

local dir, pid, port, sock, saved

-- A free loopback port (the kernel's choice, released again).
local function free_port()
  return H.run(function()
    local s = aio.start_server(function() end, "127.0.0.1", 0)
    local _, p = s:getsockname()
    s:close()
    s:wait_closed()
    return p
  end)
end

local function start_redis()
  local p = io.popen(("redis-server --port %d --bind 127.0.0.1 --unixsocket %s --save '' " ..
    "--appendonly no --dir %s > %s/log 2>&1 & echo $!"):format(port, H.quote(sock), H.quote(dir),
    H.quote(dir)))
  pid = p:read("l")
  p:close()
  -- ready when it answers PING on the port
  H.run(function()
    for _ = 1, 500 do
      local c = socket.connect("127.0.0.1", port)
      if c then
        c:send("PING\r\n")
        local line = c:receive()
        c:close()
        if line == "+PONG" then return end
      end
      aio.sleep(0.01)
    end
    error("redis-server did not start: " .. H.readall(dir .. "/log"))
  end)
end

local function stop_redis()
  if pid then os.execute("kill -9 " .. pid .. " 2>/dev/null") end
  pid = nil
end

describe("lua-redis over aio.socket, against redis-server", function()
  local redis

  setup(function()
    dir = H.tmpdir()
    sock = dir .. "/redis.sock"
    port = free_port()
    saved = { socket = package.loaded.socket, core = package.loaded["socket.core"],
              unix = package.loaded["socket.unix"] }
    socket.install()
    -- (by its path: "redis" on package.path may be lua-resty-redis, the
    -- nginx one, which the cosocket specs use)
    redis = assert(loadfile("/usr/share/lua/5.3/redis.lua"))()
    start_redis()
  end)

  teardown(function()
    stop_redis()
    H.rmrf(dir)
    package.loaded.socket, package.loaded["socket.core"] = saved.socket, saved.core
    package.loaded["socket.unix"] = saved.unix
  end)

  it("serves 50 tasks at once over a unix socket and a port", function()
    H.run(function()
      local tasks = {}
      for i = 1, 50 do
        tasks[i] = aio.create_task(function()
          local c = i % 2 == 0 and redis.connect { scheme = "unix", path = sock }
            or redis.connect("127.0.0.1", port)
          assert.is_true(c:set("k" .. i, "v" .. i))
          c:incr("counter")
          c:hmset("h" .. i, { a = i, b = "x" })
          local v, h = c:get("k" .. i), c:hgetall("h" .. i)
          c:quit()
          return v, h
        end)
      end
      for i = 1, 50 do
        assert.same({ "v" .. i, { a = tostring(i), b = "x" } }, { tasks[i]:await() })
      end
      local c = redis.connect { scheme = "unix", path = sock }
      assert.equal("50", c:get("counter"))
      assert.is_nil(c:get("missing"))
      c:quit()
    end)
  end)

  it("a blocked command times out with the client's timeout, not later", function()
    H.run(function()
      local c = redis.connect("127.0.0.1", port, 0.2)
      local t0 = aio.time()
      local ok, err = pcall(c.blpop, c, "empty-list", 5)
      assert.is_false(ok)
      assert.matches("connection error: timeout", err, 1, true)
      assert.is_true(aio.time() - t0 < 2, "the timeout did not fire")
      c.network.socket:close()
    end)
  end)

  it("a blocked command in a cancelled task ends at once, the loop stays free", function()
    H.run(function()
      local c = redis.connect("127.0.0.1", port)
      local t = aio.create_task(function() return c:blpop("empty-list", 5) end)
      aio.sleep(0.05)
      local ticks = 0
      for _ = 1, 5 do aio.sleep(0.01); ticks = ticks + 1 end   -- not blocked
      assert.equal(5, ticks)
      t:cancel()
      assert.is_true(aio.is(H.errof(t.await, t), aio.CancelledError))
      c.network.socket:close()
    end)
  end)

  it("a server that vanishes is a clear error", function()
    H.run(function()
      local c = redis.connect("127.0.0.1", port)
      assert.is_true(c:ping())
      stop_redis()
      aio.sleep(0.1)
      local ok, err = pcall(c.ping, c)
      assert.is_false(ok)
      assert.matches("connection error: closed", err, 1, true)
      c.network.socket:close()
      local ok2, err2 = pcall(redis.connect, "127.0.0.1", port)
      assert.is_false(ok2)
      assert.matches("connection refused", err2, 1, true)
    end)
  end)
end)
