-- spec/signals_spec.lua: loop:add_signal_handler / remove_signal_handler
-- (SPEC "Running" and "Processes, signals, files, threads"; asyncio's
-- add_signal_handler semantics: the handler is a callback run by the loop,
-- with the extra arguments given at registration).
local aio = require "luaio"
local H = require "helper"

local PID = io.open("/proc/self/stat"):read("n")
local SIGUSR2 = 12     -- Linux (x86, arm, ...)

local function kill_self(sig)
  assert(os.execute("kill -" .. sig .. " " .. PID))
end

local fails = H.errof

-- Method-call wrappers (lauxlib names the function in errors then).
local function add(loop, ...) return loop:add_signal_handler(...) end
local function remove(loop, ...) return loop:remove_signal_handler(...) end

-- Suspends until pred() is true (or a deadline passes).
local function until_(pred, secs)
  local deadline = aio.time() + (secs or 2)
  while not pred() and aio.time() < deadline do aio.sleep(0.002) end
  return pred()
end

describe("signal handlers", function()
  it("a handler runs with the arguments given at registration", function()
    H.run(function()
      local loop = aio.get_running_loop()
      local arg_t = {}
      local calls = {}
      loop:add_signal_handler("SIGUSR2", function(...)
        calls[#calls + 1] = table.pack(...)
      end, 1, "two", arg_t, nil)
      kill_self("USR2")
      assert.is_true(until_(function() return #calls > 0 end), "handler not called")
      assert.equal(1, #calls)
      local c = calls[1]
      assert.equal(4, c.n)
      assert.equal(1, c[1])
      assert.equal("two", c[2])
      assert.equal(arg_t, c[3])          -- passed unchanged (the same table)
      assert.is_nil(c[4])
      -- again: the handler stays installed
      kill_self("USR2")
      assert.is_true(until_(function() return #calls > 1 end))
      assert.is_true(loop:remove_signal_handler("SIGUSR2"))
    end)
  end)

  it("the handler is a callback, not a task, and runs on the loop", function()
    H.run(function()
      local loop = aio.get_running_loop()
      local main = aio.current_task()
      local info
      loop:add_signal_handler("SIGUSR2", function()
        info = { task = aio.current_task(), loop = aio.get_running_loop() }
      end)
      kill_self("USR2")
      assert.is_true(until_(function() return info ~= nil end))
      assert.is_nil(info.task)
      assert.are_not.equal(main, info.task)
      assert.equal(loop, info.loop)
      assert.is_true(loop:remove_signal_handler("SIGUSR2"))
    end)
  end)

  it("accepts signal numbers and names without SIG", function()
    H.run(function()
      local loop = aio.get_running_loop()
      local n = 0
      loop:add_signal_handler(SIGUSR2, function() n = n + 1 end)
      kill_self("USR2")
      assert.is_true(until_(function() return n == 1 end))
      -- the same signal by another spelling replaces the handler
      local m = 0
      loop:add_signal_handler("USR2", function() m = m + 1 end)
      kill_self("USR2")
      assert.is_true(until_(function() return m == 1 end))
      assert.equal(1, n)
      assert.is_true(loop:remove_signal_handler("SIGUSR2"))
    end)
  end)

  it("adding a handler again replaces the previous one", function()
    H.run(function()
      local loop = aio.get_running_loop()
      local got = {}
      loop:add_signal_handler("SIGUSR2", function() got[#got + 1] = "first" end)
      loop:add_signal_handler("SIGUSR2", function(x) got[#got + 1] = x end, "second")
      kill_self("USR2")
      assert.is_true(until_(function() return #got > 0 end))
      aio.sleep(0.02)
      assert.same({ "second" }, got)
      assert.is_true(loop:remove_signal_handler("SIGUSR2"))
    end)
  end)

  it("remove_signal_handler returns true once, then false", function()
    H.run(function()
      local loop = aio.get_running_loop()
      assert.is_false(loop:remove_signal_handler("SIGUSR2"))
      loop:add_signal_handler("SIGUSR2", function() end)
      assert.is_true(loop:remove_signal_handler("SIGUSR2"))
      assert.is_false(loop:remove_signal_handler("SIGUSR2"))
      assert.is_false(loop:remove_signal_handler(SIGUSR2))
      -- and a handler may be added again afterwards
      local called = false
      loop:add_signal_handler("SIGUSR2", function() called = true end)
      kill_self("USR2")
      assert.is_true(until_(function() return called end))
      assert.is_true(loop:remove_signal_handler("SIGUSR2"))
    end)
  end)

  it("remove_signal_handler leaves no handle behind", function()
    H.run(function()
      local loop = aio.get_running_loop()
      local before = loop:stats().handles
      loop:add_signal_handler("SIGUSR2", function() end)
      assert.equal(before + 1, loop:stats().handles)
      assert.is_true(loop:remove_signal_handler("SIGUSR2"))
      aio.sleep(0.01)      -- closing a handle takes a turn of the loop
      assert.equal(before, loop:stats().handles)
    end)
  end)

  it("a signal can wake a task waiting on a future", function()
    H.run(function()
      local loop = aio.get_running_loop()
      local fut = loop:create_future()
      loop:add_signal_handler("SIGUSR2", function(f, v)
        if not f:done() then f:set_result(v) end
      end, fut, "woken")
      -- the signal comes from another process while the main task waits
      local p = aio.create_subprocess_exec("sh", { "-c", "sleep 0.05; kill -USR2 " .. PID })
      assert.equal("woken", aio.wait_for(fut, 10))
      assert.equal(0, p:wait())
      assert.is_true(loop:remove_signal_handler("SIGUSR2"))
    end)
  end)

  it("errors in a handler go to the exception handler and the loop carries on", function()
    H.run(function()
      local loop = aio.get_running_loop()
      local reports = {}
      loop:set_exception_handler(function(_, ctx) reports[#reports + 1] = ctx end)
      local err_obj = { "boom" }
      local n = 0
      loop:add_signal_handler("SIGUSR2", function()
        n = n + 1
        error(err_obj)
      end)
      kill_self("USR2")
      assert.is_true(until_(function() return #reports > 0 end))
      assert.equal(err_obj, reports[1].exception)
      assert.is_string(reports[1].message)
      -- still installed and the loop still runs
      kill_self("USR2")
      assert.is_true(until_(function() return n == 2 end))
      assert.is_true(loop:remove_signal_handler("SIGUSR2"))
      loop:set_exception_handler(nil)
    end)
  end)

  it("a handler cannot suspend: the outside-a-task error is reported", function()
    H.run(function()
      local loop = aio.get_running_loop()
      local reports = {}
      loop:set_exception_handler(function(_, ctx) reports[#reports + 1] = ctx end)
      loop:add_signal_handler("SIGUSR2", function() aio.sleep(0) end)
      kill_self("USR2")
      assert.is_true(until_(function() return #reports > 0 end))
      assert.matches("sleep", tostring(reports[1].exception))
      assert.matches("task", tostring(reports[1].exception))
      assert.is_true(loop:remove_signal_handler("SIGUSR2"))
      loop:set_exception_handler(nil)
    end)
  end)

  it("bad signals are errors naming the signal", function()
    H.run(function()
      local loop = aio.get_running_loop()
      local f = function() end
      local err = fails(add, loop, "SIGBOGUS", f)
      assert.matches("SIGBOGUS", err)
      assert.matches("add_signal_handler", err)
      err = fails(remove, loop, "SIGBOGUS")
      assert.matches("SIGBOGUS", err)
      assert.matches("remove_signal_handler", err)
      local function bad(sig, why)
        assert.matches("bad argument #1 to 'add_signal_handler' (" .. why .. ")",
          fails(add, loop, sig, f), 1, true)
      end
      bad("sigusr2", "unknown signal 'sigusr2'")
      bad("", "unknown signal ''")
      bad(0, "invalid signal number")
      bad(-1, "invalid signal number")
      bad(1000, "invalid signal number")
      bad(2.5, "invalid signal number")
      bad({}, "signal number or name expected, got table")
      bad(nil, "signal number or name expected, got nil")
      assert.equal(0, loop:stats().handles)
    end)
  end)

  it("the handler must be a function", function()
    H.run(function()
      local loop = aio.get_running_loop()
      local err = fails(add, loop, "SIGUSR2", "nope")
      assert.matches("bad argument #2", err)
      assert.matches("bad argument #2 to 'add_signal_handler' (function expected, got no value)",
        fails(add, loop, "SIGUSR2"), 1, true)
      assert.is_false(loop:remove_signal_handler("SIGUSR2"))
      assert.equal(0, loop:stats().handles)
    end)
  end)

  it("SIGKILL and SIGSTOP are refused", function()
    H.run(function()
      local loop = aio.get_running_loop()
      for _, sig in ipairs { "SIGKILL", "KILL", 9, "SIGSTOP" } do
        local err = fails(add, loop, sig, function() end)
        assert.matches("add_signal_handler", err)
        assert.matches("cannot be caught", err)
      end
      assert.equal(0, loop:stats().handles)
      assert.is_false(loop:remove_signal_handler("SIGKILL"))
    end)
  end)

  -- In a child process: if run()'s own Ctrl-C handling stays on, SIGINT
  -- cancels the main task and would abort the whole test run.
  local SIGINT_SCRIPT = [[
local aio = require "luaio"
local function main()
  local loop = aio.get_running_loop()
  local got = 0
  loop:add_signal_handler("SIGINT", function(x) got = got + x end, 1)
  local pid = io.open("/proc/self/stat"):read("n")
  -- (not os.execute: system() ignores SIGINT while the child runs)
  aio.create_subprocess_exec("kill", { "-INT", tostring(pid) }):wait()
  for _ = 1, 200 do
    if got > 0 then break end
    aio.sleep(0.005)
  end
  aio.sleep(0.02)
  io.write("got ", got, " cancelling ", aio.current_task():cancelling(), "\n")
  assert(loop:remove_signal_handler("SIGINT"))
end
if MODE == "run" then aio.run(main) else main() end
]]

  it("a SIGINT handler replaces run()'s Ctrl-C handling (aio.run under lua5.4)", function()
    local script = H.script("MODE = 'run'\n" .. SIGINT_SCRIPT)
    local p = io.popen("timeout 10 lua5.4 " .. H.quote(script) .. " 2>&1; echo \"exit $?\"")
    local out = p:read("a")
    p:close()
    os.remove(script); os.remove((script:gsub('%.lua$', '')))
    assert.equal("got 1 cancelling 0\nexit 0\n", out)
  end)

  it("a SIGINT handler replaces the CLI's Ctrl-C handling", function()
    local script = H.script("MODE = 'cli'\n" .. SIGINT_SCRIPT)
    local r = H.cli({ script })
    os.remove(script); os.remove((script:gsub('%.lua$', '')))
    assert.equal("", r.stderr)
    assert.equal("got 1 cancelling 0\n", r.stdout)
    assert.equal(0, r.status)
  end)

  it("handlers of one loop are gone once it is closed", function()
    local r = aio.Runner()
    r:run(function()
      aio.get_running_loop():add_signal_handler("SIGUSR2", function() end)
    end)
    r:close()
    -- a fresh loop starts with no handler and can install its own
    H.run(function()
      local loop = aio.get_running_loop()
      assert.is_false(loop:remove_signal_handler("SIGUSR2"))
      local hit = false
      loop:add_signal_handler("SIGUSR2", function() hit = true end)
      kill_self("USR2")
      assert.is_true(until_(function() return hit end))
      assert.is_true(loop:remove_signal_handler("SIGUSR2"))
    end)
  end)
end)
