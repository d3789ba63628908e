-- spec/run_spec.lua: aio.run, aio.Runner, shutdown, nesting, deadlock and
-- Ctrl-C (SPEC.md "Running").
--
-- Runs in-process under both `busted --lua=build/luaio` and `--lua=lua5.4`.
-- Behaviour that depends on the process (the CLI's nested run, SIGINT,
-- deadlock detection, which needs SIGINT to be unwatched) is tested in child
-- processes so the result does not depend on how busted was started.
local aio = require "luaio"
local H = require "helper"

local function closer(fn)
  return setmetatable({}, { __close = fn })
end

local readall = H.readall

-- Runs a shell command line; returns {status, stdout, stderr}.
local function sh(cmd, stdin)
  local out, err, inp = os.tmpname(), os.tmpname(), os.tmpname()
  local f = assert(io.open(inp, "wb"))
  f:write(stdin or "")
  f:close()
  local _, _, code = os.execute(("%s <%s >%s 2>%s"):format(
    cmd, H.quote(inp), H.quote(out), H.quote(err)))
  local r = { status = code, stdout = readall(out), stderr = readall(err) }
  os.remove(out); os.remove(err); os.remove(inp)
  return r
end

-- Starts `cmd` in the background with SIGINT at its default disposition,
-- waits until its stdout says "ready", sends SIGINT; if `second`, waits
-- for "swallowed" and sends a second SIGINT. Returns {status, stdout,
-- stderr}; a watchdog kills the child (status 137) after 20 s (generous:
-- a sanitizer build on a loaded CI machine is slow).
local function interrupt(cmd, second)
  local out, err = os.tmpname(), os.tmpname()
  local script = ([[
env --default-signal=INT %s >%s 2>%s </dev/null &
pid=$!
(sleep 20; kill -9 $pid) >/dev/null 2>&1 &
wd=$!
waitfor() { i=0; while ! grep -q "$1" %s && [ $i -lt 1500 ]; do sleep 0.01; i=$((i+1)); done; }
waitfor ready
kill -INT $pid
%s
wait $pid
st=$?
kill $wd 2>/dev/null
exit $st
]]):format(cmd, H.quote(out), H.quote(err), H.quote(out),
    second and "waitfor swallowed; kill -INT $pid" or "")
  local _, _, code = os.execute("sh -c " .. H.quote(script))
  local r = { status = code, stdout = readall(out), stderr = readall(err) }
  os.remove(out); os.remove(err)
  return r
end

describe("aio.run", function()
  it("keeps pending tasks in registry slots that coexist with luaL_ref's and are reused run after run", function()
    local reg = debug.getregistry()
    local function burst(n)
      local theirs = {}
      aio.run(function()
        local ts = {}
        for i = 1, n do
          ts[i] = aio.create_task(function() aio.sleep(0); return i end)
          if i % 1000 == 0 then            -- a key taken the way luaL_ref does
            local k = #reg + 1
            reg[k] = "theirs " .. i
            theirs[k] = reg[k]
          end
        end
        local s = 0
        for i = 1, n do s = s + ts[i]:await() end
        assert.equal(n * (n + 1) // 2, s)
        assert.equal(0, aio.get_running_loop():stats().anchors)   -- (the main task's
                                                  -- coroutine holds it)
      end)
      for k, v in pairs(theirs) do
        assert.equal(v, reg[k])
        reg[k] = nil
      end
    end
    burst(5000)
    local size = #reg
    for _ = 1, 3 do burst(5000) end
    assert.is_true(#reg <= size + 50, ("the registry grew from %d to %d"):format(size, #reg))
  end)

  it("keeps its registry slots apart from luaL_ref's and luaL_unref's, interleaved", function()
    local R = H.require_cmodule("regref", [[
#include <lua.h>
#include <lauxlib.h>
static int ref (lua_State *L) {
  lua_settop(L, 1);
  lua_pushinteger(L, luaL_ref(L, LUA_REGISTRYINDEX));
  return 1;
}
static int unref (lua_State *L) {
  luaL_unref(L, LUA_REGISTRYINDEX, (int)luaL_checkinteger(L, 1));
  return 0;
}
static int get (lua_State *L) {
  lua_rawgeti(L, LUA_REGISTRYINDEX, (int)luaL_checkinteger(L, 1));
  return 1;
}
int luaopen_regref (lua_State *L) {
  lua_createtable(L, 0, 3);
  lua_pushcfunction(L, ref); lua_setfield(L, -2, "ref");
  lua_pushcfunction(L, unref); lua_setfield(L, -2, "unref");
  lua_pushcfunction(L, get); lua_setfield(L, -2, "get");
  return 1;
}
]])
    local held = {}                    -- ref -> value, checked at the end
    for round = 1, 3 do
      aio.run(function()
        local ts = {}
        for i = 1, 3000 do
          ts[i] = aio.create_task(function() aio.sleep(0); return i end)
          if i % 7 == 0 then           -- refs taken and given back meanwhile
            local v = ("r%d.%d"):format(round, i)
            held[R.ref(v)] = v
          end
          if i % 11 == 0 then
            local k = next(held)
            R.unref(k)
            held[k] = nil
          end
        end
        local s = 0
        for i = 1, #ts do s = s + ts[i]:await() end
        assert.equal(3000 * 3001 // 2, s)
      end)
      for k, v in pairs(held) do assert.equal(v, R.get(k)) end
    end
    for k in pairs(held) do R.unref(k) end
  end)

  it("returns all of fn's results, nils included", function()
    local n, a, b, c = (function(...) return select("#", ...), ... end)(
      aio.run(function() return nil, 2, nil end))
    assert.equal(3, n)
    assert.is_nil(a); assert.equal(2, b); assert.is_nil(c)
  end)

  it("runs fn as a task on a loop, so it may suspend", function()
    local r = aio.run(function()
      assert.is_not_nil(aio.current_task())
      assert.is_not_nil(aio.get_running_loop())
      aio.sleep(0.01)
      return "slept"
    end)
    assert.equal("slept", r)
  end)

  it("passes every argument after fn to fn unchanged, tables included", function()
    local t = {}
    local n, a, b, c, d = aio.run(function(...)
      return select("#", ...), ...
    end, 1, nil, t, "s")
    assert.equal(4, n)
    assert.equal(1, a); assert.is_nil(b)
    assert.equal(t, c)       -- same table, not a copy
    assert.equal("s", d)
  end)

  it("re-raises a string error unchanged", function()
    local ok, err = pcall(aio.run, function() error("boom", 0) end)
    assert.is_false(ok)
    assert.equal("boom", err)
    ok, err = pcall(aio.run, function() aio.sleep(0); error("with position") end)
    assert.is_false(ok)
    assert.matches("^[^\n]*run_spec%.lua:%d+: with position$", err)
  end)

  it("re-raises a table error value unchanged (same table)", function()
    local e = { code = 42 }
    local ok, err = pcall(aio.run, function() aio.sleep(0); error(e) end)
    assert.is_false(ok)
    assert.equal(e, err)
  end)

  it("re-raises an error that crossed an await unchanged", function()
    local e = setmetatable({}, { __tostring = function() return "custom" end })
    local ok, err = pcall(aio.run, function()
      local t = aio.create_task(function() aio.sleep(0); error(e) end)
      return t:await()
    end)
    assert.is_false(ok)
    assert.equal(e, err)
  end)

  it("raises CancelledError when the main task is cancelled", function()
    local ok, err = pcall(aio.run, function()
      aio.current_task():cancel("bye")
      aio.sleep(1)
      return "not reached"
    end)
    assert.is_false(ok)
    assert.is_true(aio.is(err, aio.CancelledError))
  end)

  it("uses a new loop each time", function()
    local l1 = aio.run(function() return aio.get_running_loop() end)
    local l2 = aio.run(function() return aio.get_running_loop() end)
    assert.is_not_nil(l1)
    assert.are_not.equal(l1, l2)
  end)

  it("cancels pending tasks at the end and lets them unwind (cleanup may suspend)", function()
    local log = {}
    local t
    local r = aio.run(function()
      t = aio.create_task(function()
        local _ <close> = closer(function() log[#log + 1] = "closed" end)
        local ok, err = pcall(aio.sleep, 10)
        log[#log + 1] = aio.is(err, aio.CancelledError) and "cancelled" or tostring(ok)
        aio.sleep(0.01)          -- cleanup suspends: shutdown waits for it
        log[#log + 1] = "cleaned up"
        error(err, 0)
      end)
      aio.sleep(0)
      return "main done"
    end)
    assert.equal("main done", r)
    assert.same({ "cancelled", "cleaned up", "closed" }, log)
    assert.is_true(t:done())
    assert.is_true(t:cancelled())
  end)

  it("cancels pending tasks when fn fails too, then re-raises fn's error", function()
    local log = {}
    local ok, err = pcall(aio.run, function()
      aio.create_task(function()
        local _ <close> = closer(function() log[#log + 1] = "closed" end)
        aio.sleep(10)
      end)
      aio.sleep(0)
      error("main failed", 0)
    end)
    assert.is_false(ok)
    assert.equal("main failed", err)
    assert.same({ "closed" }, log)
  end)

  it("rejects a non-function with a lauxlib-style message", function()
    local ok, err = pcall(aio.run, "x")
    assert.is_false(ok)
    assert.equal("bad argument #1 to 'run' (function expected, got string)", err)
    ok, err = pcall(aio.run, 42)
    assert.is_false(ok)
    assert.equal("bad argument #1 to 'run' (function expected, got number)", err)
    ok, err = pcall(aio.run)
    assert.is_false(ok)
    assert.matches("bad argument #1 to 'run' %(function expected, got ", err)
  end)

  it("raises 'aio.run: a loop is already running' from a task", function()
    H.run(function()
      local ran = false
      local ok, err = pcall(aio.run, function() ran = true end)
      assert.is_false(ok)
      assert.matches("aio.run: a loop is already running", err, 1, true)
      assert.is_false(ran)
      -- the running loop is not disturbed
      assert.equal(7, aio.sleep(0.001, 7))
    end)
  end)

  it("raises 'already running' from a nested Runner:run in a task", function()
    H.run(function()
      local r = aio.Runner()
      local ok, err = pcall(r.run, r, function() end)
      r:close()
      assert.is_false(ok)
      assert.matches("already running", err, 1, true)
    end)
  end)

  it("raises 'already running' from a callback of a running loop", function()
    H.run(function()
      local done = aio.Future()
      aio.get_running_loop():call_soon(function()
        done:set_result(pcall(aio.run, function() end))
      end)
      local ok, err = done:await()
      assert.is_false(ok)
      assert.matches("already running", err, 1, true)
    end)
  end)

  it("raises 'already running' from a task that is not the main task", function()
    H.run(function()
      local t = aio.create_task(function()
        return pcall(aio.run, function() return 1 end)
      end)
      local ok, err = t:await()
      assert.is_false(ok)
      assert.matches("already running", err, 1, true)
    end)
  end)
end)

describe("aio.Runner", function()
  it("runs fn with its arguments and returns its results", function()
    local r = aio.Runner()
    local a, b = r:run(function(x, y) aio.sleep(0); return x + y, "ok" end, 1, 2)
    r:close()
    assert.equal(3, a)
    assert.equal("ok", b)
  end)

  it("keeps tasks alive from one run to the next (asyncio parity)", function()
    local r = aio.Runner()
    local t = r:run(function()
      return aio.create_task(function() aio.sleep(0.01); return "bg", 2 end)
    end)
    assert.is_false(t:done())
    local a, b = r:run(function() return t:await() end)
    assert.equal("bg", a)
    assert.equal(2, b)
    r:close()
  end)

  it("keeps the same loop across runs", function()
    local r = aio.Runner()
    local l1 = r:run(function() return aio.get_running_loop() end)
    local l2 = r:run(function() return aio.get_running_loop() end)
    r:close()
    assert.equal(l1, l2)
  end)

  it("close() cancels tasks left pending and runs their <close> handlers", function()
    local log = {}
    local r = aio.Runner()
    local t = r:run(function()
      local t = aio.create_task(function()
        local _ <close> = closer(function() log[#log + 1] = "closed" end)
        local _, err = pcall(aio.sleep, 10)
        log[#log + 1] = aio.is(err, aio.CancelledError) and "cancelled" or "woke"
        aio.sleep(0)      -- may still suspend while shutting down
        log[#log + 1] = "unwound"
        error(err, 0)
      end)
      aio.sleep(0)
      return t
    end)
    assert.same({}, log)
    r:close()
    assert.same({ "cancelled", "unwound", "closed" }, log)
    assert.is_true(t:cancelled())
  end)

  it("is a to-be-closed value", function()
    local log = {}
    do
      local r <close> = aio.Runner()
      r:run(function()
        aio.create_task(function()
          local _ <close> = closer(function() log[#log + 1] = "closed" end)
          aio.sleep(10)
        end)
        aio.sleep(0)
      end)
      assert.same({}, log)
    end
    assert.same({ "closed" }, log)
  end)

  it("cannot run after close; close twice is harmless", function()
    local r = aio.Runner()
    r:run(function() end)
    r:close()
    assert.has_no.errors(function() r:close() end)
    local ok, err = pcall(r.run, r, function() end)
    assert.is_false(ok)
    assert.matches("closed", err, 1, true)
  end)

  it("re-raises fn's error unchanged and stays usable", function()
    local r = aio.Runner()
    local e = {}
    local ok, err = pcall(r.run, r, function() aio.sleep(0); error(e) end)
    assert.is_false(ok)
    assert.equal(e, err)
    assert.equal("again", r:run(function() aio.sleep(0); return "again" end))
    r:close()
  end)

  it("rejects bad arguments with clear messages", function()
    local ok, err = pcall(aio.Runner, 5)
    assert.is_false(ok)
    assert.equal("bad argument #1 to 'Runner' (table expected, got number)", err)
    local r = aio.Runner()
    ok, err = pcall(r.run, r, 5)
    assert.is_false(ok)
    assert.matches("bad argument #1 to 'run' %(function expected, got number%)", err)
    r:close()
  end)

  it("rejects bad option values, naming the option", function()
    local ok, err = pcall(function()
      local r = aio.Runner({ clock = "bogus" })
      r:run(function() end)
    end)
    assert.is_false(ok)
    assert.matches("clock", err, 1, true)
    ok, err = pcall(function()
      local r = aio.Runner({ shutdown_timeout = "soon" })
      r:run(function() end)
    end)
    assert.is_false(ok)
    assert.matches("shutdown_timeout", err, 1, true)
  end)

  it("clock = 'virtual' makes long sleeps instant", function()
    local c0 = os.clock()
    local dt = H.run(function()
      local t0 = aio.time()
      aio.sleep(3600)
      return aio.time() - t0
    end, { clock = "virtual" })
    assert.is_true(dt >= 3600, "virtual time advanced by " .. tostring(dt))
    assert.is_true(os.clock() - c0 < 1)
  end)

  it("abandons tasks still pending after shutdown_timeout: reported, <close> runs, cannot suspend", function()
    local log, reports = {}, {}
    local r = aio.Runner({ shutdown_timeout = 0.05 })
    r:get_loop():set_exception_handler(function(_, ctx) reports[#reports + 1] = ctx end)
    local t = r:run(function()
      local t = aio.create_task(function()
        local _ <close> = closer(function()
          log[#log + 1] = "closed"
          log[#log + 1] = pcall(aio.sleep, 0) and "suspended" or "could not suspend"
        end)
        while true do pcall(aio.sleep, 10) end   -- swallows every cancellation
      end)
      aio.sleep(0)
      return t
    end)
    r:close()
    assert.same({ "closed", "could not suspend" }, log)
    assert.is_true(#reports >= 1, "the abandoned task was not reported")
    local found = false
    for _, ctx in ipairs(reports) do
      assert.is_string(ctx.message)
      if ctx.task == t then found = true end
    end
    assert.is_true(found, "no report names the abandoned task")
  end)
end)

describe("aio.run under stock lua5.4", function()
  it("first Ctrl-C cancels the main task and run raises 'interrupted!'", function()
    local path = H.script([[
      local aio = require "luaio"
      local ok, err = pcall(aio.run, function()
        aio.create_task(function()
          local _ <close> = setmetatable({}, { __close = function() print("bg cleanup") end })
          aio.sleep(10)
        end)
        local _ <close> = setmetatable({}, { __close = function() print("main cleanup") end })
        aio.sleep(0)
        print("ready"); io.stdout:flush()
        aio.sleep(10)
      end)
      print("run returned", ok, err)
      -- the loop machinery is usable again afterwards
      print(aio.run(function() aio.sleep(0); return "after" end))
    ]])
    local r = interrupt("lua5.4 " .. H.quote(path))
    os.remove(path)
    assert.equal(0, r.status, r.stderr)
    assert.matches("main cleanup", r.stdout, 1, true)
    assert.matches("bg cleanup", r.stdout, 1, true)
    assert.matches("run returned\tfalse\tinterrupted!\n", r.stdout, 1, true)
    assert.matches("\nafter\n", r.stdout, 1, true)
  end)

  it("an uncaught 'interrupted!' makes lua5.4 exit 1 printing it", function()
    local path = H.script([[
      local aio = require "luaio"
      aio.run(function()
        print("ready"); io.stdout:flush()
        aio.sleep(10)
      end)
    ]])
    local r = interrupt("lua5.4 " .. H.quote(path))
    os.remove(path)
    assert.equal(1, r.status, r.stderr)
    assert.matches("interrupted!", r.stderr, 1, true)
  end)

  it("a second Ctrl-C kills a main task that swallows the first", function()
    local path = H.script([[
      local aio = require "luaio"
      aio.run(function()
        print("ready"); io.stdout:flush()
        while true do
          local ok = pcall(aio.sleep, 10)
          if not ok then print("swallowed"); io.stdout:flush() end
        end
      end)
    ]])
    local r = interrupt("lua5.4 " .. H.quote(path), true)
    os.remove(path)
    assert.equal(130, r.status, r.stderr)   -- killed by SIGINT (128 + 2)
    assert.matches("swallowed", r.stdout, 1, true)
  end)
end)

describe("aio.run under the CLI", function()
  local function cli(src, opts)
    local path = H.script(src)
    local r = H.cli({ path }, opts)
    os.remove(path)
    return r
  end

  it("runs a stock-lua5.4 script unchanged on a fresh nested loop", function()
    local r = cli([[
      local aio = require "luaio"
      local outer = aio.get_running_loop()
      local a, b, inner = aio.run(function(x, y)
        aio.sleep(0.01)
        return x + y, "x", aio.get_running_loop()
      end, 1, 2)
      print(a, b, inner ~= outer, aio.get_running_loop() == outer)
      aio.sleep(0.001)          -- the CLI's loop works again afterwards
      print("after")
    ]])
    assert.equal(0, r.status, r.stderr)
    assert.equal("3\tx\ttrue\ttrue\nafter\n", r.stdout)
  end)

  it("nests at any call depth and for Runner:run too", function()
    local r = cli([[
      local aio = require "luaio"
      local function deep(n)
        if n == 0 then
          local rn = aio.Runner({ clock = "virtual" })
          local v = rn:run(function() local t0 = aio.time(); aio.sleep(100); return aio.time() - t0 end)
          rn:close()
          return v
        end
        return deep(n - 1)
      end
      print(deep(5) >= 100)
    ]])
    assert.equal(0, r.status, r.stderr)
    assert.equal("true\n", r.stdout)
  end)

  it("nested run cancels its own pending tasks and re-raises errors unchanged", function()
    local r = cli([[
      local aio = require "luaio"
      local e = { code = 7 }
      local ok, err = pcall(aio.run, function()
        aio.create_task(function()
          local _ <close> = setmetatable({}, { __close = function() print("inner cleanup") end })
          aio.sleep(10)
        end)
        aio.sleep(0)
        error(e)
      end)
      print(ok, err == e, err.code)
    ]])
    assert.equal(0, r.status, r.stderr)
    assert.equal("inner cleanup\nfalse\ttrue\t7\n", r.stdout)
  end)

  it("raises 'already running' when the main task is not the only task", function()
    local r = cli([[
      local aio = require "luaio"
      local t = aio.create_task(function() aio.sleep(0.01) end)
      print(pcall(aio.run, function() return 1 end))
      t:await()
    ]])
    assert.equal(0, r.status, r.stderr)
    assert.matches("^false\t[^\n]*aio.run: a loop is already running", r.stdout)
  end)

  it("raises 'already running' from a task other than the main task", function()
    local r = cli([[
      local aio = require "luaio"
      local t = aio.create_task(function() return pcall(aio.run, function() return 1 end) end)
      print(t:await())
    ]])
    assert.equal(0, r.status, r.stderr)
    assert.matches("^false\t[^\n]*already running", r.stdout)
  end)

  it("raises a deadlock error instead of hanging (SIGINT ignored, so not watched)", function()
    local path = H.script([[
      local aio = require "luaio"
      local ok, err = pcall(aio.run, function() aio.Future():await() end)
      print(ok, err)
      print(aio.run(function() return "loop ok" end))
    ]])
    local r = sh("timeout 5 env --ignore-signal=INT " .. H.quote(H.LUAIO) .. " " .. H.quote(path))
    os.remove(path)
    assert.equal(0, r.status, r.stderr)
    assert.matches("^false\t[^\n]*deadlock", r.stdout)
    assert.matches("\nloop ok\n", r.stdout)
  end)

  it("Ctrl-C during a nested run unwinds it and the CLI exits 130", function()
    local path = H.script([[
      local aio = require "luaio"
      aio.run(function()
        local _ <close> = setmetatable({}, { __close = function() print("nested cleanup") end })
        print("ready"); io.stdout:flush()
        aio.sleep(10)
      end)
      print("not reached")
    ]])
    local r = interrupt(H.quote(H.LUAIO) .. " " .. H.quote(path))
    os.remove(path)
    assert.equal(130, r.status, r.stderr)
    assert.matches("nested cleanup", r.stdout, 1, true)
    assert.not_matches("not reached", r.stdout, 1, true)
  end)
end)
