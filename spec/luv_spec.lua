-- spec/luv_spec.lua: luv (Debian's lua-luv) and luaio on one libuv loop:
-- aio.Runner{loop = uv} runs luaio on luv's loop, so luv's timers and TCP
-- handles and luaio's tasks are served by the same uv_run, with no
-- uv.run anywhere.  luv is required here, on the thread that then calls
-- runner:run (luv before 1.50 calls its callbacks on the thread that
-- required it: see docs/guide-libraries.md, "luv on the same loop").
local aio = require "luaio"
local H = require "helper"
local uv = require "luv"

local HOST = "127.0.0.1"

-- Runs fn as the main task of a runner on luv's loop, with a watchdog;
-- closes the runner however fn ends.
local function on_luv(fn, limit)
  local r = aio.Runner { loop = uv }
  local ok, err = pcall(r.run, r, function()
    local ok2, e = pcall(aio.wait_for, fn, (limit or 3) * H.SLOW)
    if not ok2 then error(e, 0) end
  end)
  r:close()
  if not ok then error(err, 0) end
end

local function close(h)
  if not h:is_closing() then h:close() end
end

-- A luv TCP server answering each chunk in upper case; -> port, server.
local function luv_upper_server()
  local srv = uv.new_tcp()
  assert(srv:bind(HOST, 0))
  assert(srv:listen(64, function(err)
    assert(not err, err)
    local c = uv.new_tcp()
    srv:accept(c)
    c:read_start(function(e, data)
      if data and not e then c:write(data:upper()) else close(c) end
    end)
  end))
  return srv:getsockname().port, srv
end

describe("luv on luaio's loop (aio.Runner{loop = uv})", function()
  it("a luv timer fires while tasks sleep, and wakes a task; no uv.run anywhere", function()
    on_luv(function()
      local ticks, log = 0, {}
      local ev = aio.Event()
      local t = uv.new_timer()
      t:start(5, 10, function()
        ticks = ticks + 1
        log[#log + 1] = "uv"
        if ticks == 5 then ev:set() end
      end)
      local sleeper = aio.create_task(function()
        for _ = 1, 4 do
          aio.sleep(0.01)
          log[#log + 1] = "aio"
        end
      end)
      ev:wait()                 -- (set by luv's callback)
      aio.await(sleeper)
      t:stop()
      close(t)
      assert.equal(5, ticks)
      -- both kinds ran while the other waited: interleaved, not in blocks
      local s = table.concat(log, " ")
      assert.matches("uv aio", s)
      assert.matches("aio uv", s)
    end)
  end)

  it("luaio clients talk to a luv TCP server, 20 at once", function()
    on_luv(function()
      local port, srv = luv_upper_server()
      local ts = {}
      for i = 1, 20 do
        ts[i] = aio.create_task(function()
          local r, w = aio.open_connection(HOST, port)
          w:write(("hello %d\n"):format(i))
          local line = r:readline()
          w:close()
          w:wait_closed()
          return line
        end)
      end
      local got = aio.gather(ts)
      for i = 1, 20 do assert.equal(("HELLO %d\n"):format(i), got[i]) end
      close(srv)
    end)
  end)

  it("a luv TCP client talks to a luaio server", function()
    on_luv(function()
      local srv = aio.start_server(function(r, w)
        local line = r:readline()
        w:write("echo:" .. line)
        w:close()
      end, HOST, 0)
      local _, port = srv:getsockname()
      local done, got = aio.Event(), {}
      local c = uv.new_tcp()
      c:connect(HOST, port, function(err)
        assert(not err, err)
        c:write("from luv\n")
        c:read_start(function(e, data)
          if data then got[#got + 1] = data
          else
            close(c)
            done:set()
          end
          assert(not e, e)
        end)
      end)
      done:wait()
      assert.equal("echo:from luv\n", table.concat(got))
      srv:close()
      srv:wait_closed()
    end)
  end)

  it("run returns with luv's handles active; close leaves them to luv", function()
    local fired = 0
    local t = uv.new_timer()
    on_luv(function()
      t:start(30, 0, function() fired = fired + 1 end)
      aio.sleep(0.001)
    end)
    assert.equal(0, fired)
    assert.is_true(t:is_active())          -- (luaio did not close it)
    uv.run()                               -- (luv drives its loop again)
    assert.equal(1, fired)
    close(t)
    uv.run()
  end)

  it("runs again on luv's loop after a runner is closed", function()
    for i = 1, 3 do
      local n = 0
      on_luv(function()
        local t = uv.new_timer()
        t:start(1, 0, function() n = n + i end)
        aio.sleep(0.02)
        close(t)
      end)
      assert.equal(i, n)
    end
  end)

  -- The script of the next tests: luv's timer and a luv server with
  -- luaio clients, on one loop; the runner left open when unclosed is set.
  local SCRIPT = [[
    local uv = require "luv"
    local aio = require "luaio"
    local unclosed = ...
    local r = aio.Runner { loop = uv }
    print(r:run(function()
      local ticks, ev = 0, aio.Event()
      local t = uv.new_timer()
      t:start(1, 1, function()
        ticks = ticks + 1
        if ticks == 3 then ev:set() end
      end)
      local srv = uv.new_tcp()
      assert(srv:bind("127.0.0.1", 0))
      srv:listen(8, function()
        local c = uv.new_tcp()
        srv:accept(c)
        c:read_start(function(_, d) if d then c:write(d:upper()) else c:close() end end)
      end)
      local rd, wr = aio.open_connection("127.0.0.1", srv:getsockname().port)
      wr:write("from a task\n")
      local line = rd:readline()
      ev:wait()
      if not unclosed then t:close(); srv:close(); wr:close() end
      return line:sub(1, -2), ticks >= 3
    end))
    if not unclosed then r:close() end
    print("end")
  ]]

  it("the recipe as a script: under the luaio CLI and under lua5.4", function()
    local path = H.script(SCRIPT)
    local res = H.cli { path }
    assert.same({ 0, "FROM A TASK\ttrue\nend\n", "" }, { res.status, res.stdout, res.stderr })
    local out = os.tmpname()
    local ok = os.execute("timeout 20 lua5.4 " .. H.quote(path) .. " > " .. H.quote(out) .. " 2>&1")
    assert.equal("FROM A TASK\ttrue\nend\n", H.readall(out))
    assert.is_true(ok)
    os.remove(out)
    os.remove(path)
  end)

  it("a runner never closed, luv's handles and luaio's streams open: the state closes cleanly", function()
    local path = H.script(SCRIPT)
    local res = H.cli { path, "unclosed" }
    assert.same({ 0, "FROM A TASK\ttrue\nend\n", "" }, { res.status, res.stdout, res.stderr })
    local out = os.tmpname()
    local ok = os.execute("timeout 20 lua5.4 " .. H.quote(path) .. " unclosed > " .. H.quote(out) .. " 2>&1")
    assert.equal("FROM A TASK\ttrue\nend\n", H.readall(out))
    assert.is_true(ok)
    os.remove(out)
    os.remove(path)
  end)

  it("a closed runner, collected while the next one runs, leaves luv's loop alone", function()
    local meta = debug.getregistry()["uv_loop.meta"]
    local r1 = aio.Runner { loop = uv }
    r1:run(function() end)
    r1:close()
    local r2 = aio.Runner { loop = uv }
    r2:run(function() end)
    r1 = nil                                       -- luacheck: ignore
    collectgarbage()
    collectgarbage()
    assert.equal(meta, getmetatable(rawget(uv, "_loop")))
    assert.equal(7, r2:run(function() aio.sleep(0.001) return 7 end))
    r2:close()
  end)

  it("refuses what is not luv's loop, and a second runner on it", function()
    assert.equal("bad option 'loop' to 'Runner' (luv's module expected, got table)",
      H.errof(aio.Runner, { loop = {} }))
    assert.equal("bad option 'loop' to 'Runner' (luv's module expected, got number)",
      H.errof(aio.Runner, { loop = 5 }))
    local r1 = aio.Runner { loop = uv }
    r1:get_loop()
    local r2 = aio.Runner { loop = uv }
    assert.equal("luv's loop already has a luaio runner (close it first)",
      H.errof(r2.run, r2, function() end))
    r1:close()
    assert.equal(42, r2:run(function() return 42 end))
    r2:close()
  end)
end)
