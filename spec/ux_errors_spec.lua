-- Errors that point at the user's code (issue 22, bugs 2 and 3) and the
-- tools for a stuck program: where a TimeoutError's task was waiting,
-- luaio errors under a plain lua5.4, aio.format_exception, debug mode's
-- report of what was left open and of cancellations not honoured, the
-- task dump's cancel requests.
local aio = require "luaio"
local H = require "helper"

local SPEC = "ux_errors_spec.lua"

-- The line of the caller.
local function here() return debug.getinfo(2, "l").currentline end

-- An object with write, collecting what is written.
local function sink()
  local s = { text = "" }
  function s.write(self, ...)
    for _, v in ipairs { ... } do self.text = self.text .. v end
  end
  return s
end

describe("a TimeoutError's traceback", function()
  it("from aio.timeout shows where the task was suspended when the deadline passed", function()
    local line
    local function slow() line = here(); aio.sleep(10) end
    local err = H.run(function()
      local t = aio.create_task(function()
        local _ <close> = aio.timeout(0.02)
        slow()
      end)
      local ok, e = pcall(t.await, t)
      assert.is_false(ok)
      -- the failed task's traceback ends with where it waited
      local stack = t:get_stack()
      assert.matches("(the deadline passed while the task waited at:)", stack, 1, true)
      assert.matches(SPEC .. ":" .. line .. ":", stack, 1, true)
      return e
    end)
    assert.is_true(aio.is(err, aio.TimeoutError))
    assert.equal("TimeoutError", tostring(err))
    assert.matches(SPEC .. ":" .. line .. ":", err.traceback, 1, true)
  end)

  it("from wait_for names the line that called wait_for", function()
    local line
    local err = H.run(function()
      local ok, e = pcall(function()
        line = here(); aio.wait_for(function() aio.sleep(10) end, 0.02)
      end)
      assert.is_false(ok)
      return e
    end)
    assert.is_true(aio.is(err, aio.TimeoutError))
    assert.matches(SPEC .. ":" .. line .. ":", err.traceback, 1, true)
  end)

  it("from a timeout around a TaskGroup names the line of the group's scope", function()
    local line
    local err = H.run(function()
      local ok, e = pcall(function()
        local _ <close> = aio.timeout(0.02)
        local tg <close> = aio.TaskGroup()
        tg:create_task(aio.sleep, 10)
        line = here() + 1
      end)   -- the group waits here
      assert.is_false(ok)
      return e
    end)
    assert.is_true(aio.is(err, aio.TimeoutError))
    assert.matches(SPEC .. ":" .. line .. ":", err.traceback, 1, true)
  end)
end)

describe("a TaskGroup's ExceptionGroup", function()
  it("carries where the body was waiting when a child failed", function()
    local line
    local err = H.run(function()
      local ok, e = pcall(function()
        local tg <close> = aio.TaskGroup()
        tg:create_task(function() aio.sleep(0.01); error("child failed", 0) end)
        line = here(); aio.sleep(10)
      end)
      assert.is_false(ok)
      return e
    end)
    assert.is_true(aio.is(err, aio.ExceptionGroup))
    assert.matches(SPEC .. ":" .. line .. ":", err.traceback, 1, true)
  end)
end)

describe("aio.format_exception", function()
  it("renders the message, the traceback and each sub-error, numbered and nested", function()
    local inner = aio.ExceptionGroup("inner", { aio.OSError("disk gone") })
    local eg = aio.ExceptionGroup("outer", { "plain: boom", inner })
    eg.traceback = "stack traceback:\n\tmain.lua:3: in main chunk"
    eg.tracebacks = { "stack traceback:\n\tworker.lua:7: in function 'work'" }
    local s = aio.format_exception(eg)
    local want = table.concat({
      "ExceptionGroup: outer (2 sub-exceptions)",
      "stack traceback:\n\tmain.lua:3: in main chunk",
      "[1] plain: boom",
      "stack traceback:\n\tworker.lua:7: in function 'work'",
      "[2] ExceptionGroup: inner (1 sub-exception)",
    }, "\n")
    assert.equal(want, s:sub(1, #want))
    assert.matches("\n[2.1] OSError: disk gone\nstack traceback:", s, 1, true)
    assert.matches(SPEC, s:match("%[2%.1%].*"), 1, true)   -- where it was made
  end)

  it("takes the traceback to show instead of the error's own", function()
    local e = aio.TimeoutError("late")
    assert.equal("TimeoutError: late\nTB", aio.format_exception(e, "TB"))
    assert.equal("just a string", aio.format_exception("just a string"))
    assert.equal("(error object is a boolean value)", aio.format_exception(false))
  end)

  it("shows the errors an error is chained to first", function()
    local cause = aio.OSError("refused")
    cause.traceback = nil
    local e = aio.Error("fetch failed", { cause = cause, traceback = "TB" })
    assert.equal("OSError: refused\n\nThe above error was the direct cause of "
      .. "the following error:\n\nError: fetch failed\nTB", aio.format_exception(e))
  end)

  it("refuses a traceback that is not a string", function()
    assert.equal("bad argument #2 to 'format_exception' (string or nil expected, got number)",
      H.errof(aio.format_exception, aio.Error("x"), 1))
  end)

  it("is what the CLI prints for an uncaught error, nested groups included", function()
    local path = H.script([[
local aio = require "luaio"
local tg <close> = aio.TaskGroup()
tg:create_task(function()
  error(aio.ExceptionGroup("inner", { aio.OSError("deep failure") }))
end)
aio.sleep(1)
]])
    local r = H.cli({ path })
    os.remove(path)
    assert.equal(1, r.status)
    assert.matches("ExceptionGroup: unhandled errors in a TaskGroup (1 sub-exception)",
      r.stderr, 1, true)
    assert.matches("\n[1] ExceptionGroup: inner (1 sub-exception)\n", r.stderr, 1, true)
    assert.matches("\n[1.1] OSError: deep failure\nstack traceback:", r.stderr, 1, true)
    -- and where the body was when the child failed
    assert.matches("(the task group's body was waiting at:)", r.stderr, 1, true)
    assert.matches(":6: in main chunk", r.stderr, 1, true)
  end)
end)

describe("the default exception handler", function()
  it("prints an error as format_exception does: each sub-error, where it came from", function()
    local path = H.script([[
local aio = require "luaio"
local t = aio.create_task(function()
  error(aio.ExceptionGroup("several", { aio.OSError("first"), "second" }))
end)
aio.sleep(0.01)
t = nil
collectgarbage(); collectgarbage()
aio.sleep(0.01)
]])
    local r = H.cli({ path })
    os.remove(path)
    assert.equal(0, r.status, r.stderr)
    assert.matches("Task exception was never retrieved", r.stderr, 1, true)
    assert.matches("ExceptionGroup: several (2 sub-exceptions)\nstack traceback:", r.stderr, 1, true)
    assert.matches("\n[1] OSError: first\nstack traceback:", r.stderr, 1, true)
    assert.matches("\n[2] second", r.stderr, 1, true)
  end)
end)

describe("under a plain lua5.4", function()
  -- Runs code with `lua5.4 -e` (this checkout's luaio on the paths).
  local function lua54(code)
    local err = os.tmpname()
    local cmd = ("timeout 20 lua5.4 -e %s 2>%s"):format(H.quote(code), H.quote(err))
    local _, _, status = os.execute(cmd)
    local text = H.readall(err)
    os.remove(err)
    return status, text
  end

  it("an uncaught ExceptionGroup prints each sub-error and where it came from", function()
    local status, stderr = lua54([[
local aio = require "luaio"
aio.run(function()
  local tg <close> = aio.TaskGroup()
  tg:create_task(function() aio.sleep(0.01); error("child failed") end)
  aio.sleep(10)
end)]])
    assert.equal(1, status)
    assert.matches("lua5.4: ExceptionGroup: unhandled errors in a TaskGroup (1 sub-exception)\n",
      stderr, 1, true)
    assert.matches("(command line):5: in function", stderr, 1, true)  -- the body
    assert.matches("\n[1] (command line):4: child failed\nstack traceback:", stderr, 1, true)
  end)

  it("an uncaught TimeoutError prints the line that was waiting", function()
    local status, stderr = lua54([[
local aio = require "luaio"
aio.run(function()
  aio.wait_for(function()
    aio.sleep(10)
  end, 0.02)
end)]])
    assert.equal(1, status)
    assert.matches("lua5.4: TimeoutError\nstack traceback:", stderr, 1, true)
    assert.matches("(command line):3: in function", stderr, 1, true)
  end)

  it("an error caught with pcall stays the plain error object", function()
    local status, stderr = lua54([[
local aio = require "luaio"
local ok, e = pcall(aio.run, function() aio.wait_for(function() aio.sleep(10) end, 0.01) end)
assert(not ok and getmetatable(e) == aio.TimeoutError, "class")
io.stderr:write("[", tostring(e), "]")]])
    assert.equal(0, status, stderr)
    assert.equal("[TimeoutError]", stderr)
  end)
end)

describe("debug mode's report of what was left open", function()
  it("names each object and where it was opened", function()
    local line1, line2
    local got = H.reports(function()
      line1 = here(); local srv = aio.start_server(function() end, "127.0.0.1", 0)
      local _, port = srv:getsockname()
      line2 = here(); local _, w = aio.open_connection("127.0.0.1", port)
      assert(w)
    end, { debug = true })
    local left
    for _, ctx in ipairs(got) do
      if ctx.message:find("left open at loop close", 1, true) then left = ctx end
    end
    assert.is_not_nil(left)
    -- the server, the client's stream and the accepted one (opened by no task)
    assert.equal("3 stream(s) or server(s) left open at loop close (closed now)", left.message)
    local _, n = left.traceback:gsub("opened at:", "")
    assert.equal(2, n)
    assert.matches("a server opened at:\nstack traceback:\n", left.traceback, 1, true)
    assert.matches(SPEC .. ":" .. line1 .. ":", left.traceback, 1, true)
    assert.matches("a stream opened at:\nstack traceback:\n", left.traceback, 1, true)
    assert.matches(SPEC .. ":" .. line2 .. ":", left.traceback, 1, true)
  end)

  it("is printed by the default handler under LUAIO_DEBUG=1", function()
    local path = H.script([[
local aio = require "luaio"
local srv = aio.start_server(function() end, "127.0.0.1", 0)
]])
    local r = H.cli({ path }, { env = "LUAIO_DEBUG=1" })
    os.remove(path)
    assert.equal(0, r.status, r.stderr)
    assert.matches("1 stream(s) or server(s) left open at loop close (closed now)\n"
      .. "a server opened at:\nstack traceback:\n", r.stderr, 1, true)
    assert.matches(":2: in main chunk", r.stderr, 1, true)
  end)
end)

describe("a cancellation that is not honoured", function()
  -- A task that catches its cancellation and goes on, until told to stop.
  local function swallower(state)
    return aio.create_task(function()
      while not state.stop do
        state.line = here(); pcall(aio.sleep, 0.01)
      end
    end)
  end

  it("shows in the task dump: how many requests and for how long", function()
    H.run(function()
      local state = {}
      local t = swallower(state)
      t:set_name("stubborn")
      aio.sleep(0.02)
      t:cancel()
      t:cancel()
      aio.sleep(0.1)
      local out = sink()
      aio.dump_tasks(out)
      local secs = out.text:match(
        "stubborn %[[^%]]+%] %(cancel requested 2 times, pending for (%d+%.%d+) s%)")
      assert.is_not_nil(secs, out.text)
      assert.is_true(tonumber(secs) >= 0.09, out.text)
      -- a task with no request pending shows none
      assert.is_nil(out.text:match("Task%-%d+ %[running%] %(cancel"), out.text)
      state.stop = true
      t:await()
    end)
  end)

  it("is reported once by debug mode after 1 s, with where the task is", function()
    local state = {}
    local got = H.reports(function()
      local t = swallower(state)
      -- a task that takes 0.5 s to honour its cancellation is not reported
      local slow = aio.create_task(function()
        local ok = pcall(aio.sleep, 10)
        assert(not ok)
        aio.sleep(0.5)
      end)
      aio.sleep(0.02)
      t:cancel()
      slow:cancel()
      aio.sleep(1.3)
      state.stop = true
      t:await()
      assert.is_true(slow:done())
    end, { debug = true })
    local warned = {}
    for _, ctx in ipairs(got) do
      if ctx.message:find("not honoured", 1, true) then warned[#warned + 1] = ctx end
    end
    assert.equal(1, #warned)
    assert.matches("^Task 'Task%-%d+': pending %(0x%x+%) has not honoured its cancellation "
      .. "after 1%.%d seconds %(1 request pending%): it catches CancelledError %(pcall%) "
      .. "without re%-raising it, or waits for a task that does$", warned[1].message)
    assert.matches(SPEC .. ":" .. state.line .. ":", warned[1].traceback, 1, true)
  end)

  it("is not reported outside debug mode", function()
    local state = {}
    local got = H.reports(function()
      local t = swallower(state)
      aio.sleep(0.02)
      t:cancel()
      aio.sleep(1.2)
      state.stop = true
      t:await()
    end)
    assert.equal(0, #got)
  end)
end)
