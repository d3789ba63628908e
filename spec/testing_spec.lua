-- spec/testing_spec.lua: luaio.testing (install/async), the virtual clock,
-- and aio.dump_tasks.
--
-- The last describe block calls testing.install{clock = "virtual"}, which
-- wraps `it` for the rest of this file: keep it last.
local aio = require "luaio"
local H = require "helper"
local testing = require "luaio.testing"

local V = { clock = "virtual" }

local function is_cancelled(err) return aio.is(err, aio.CancelledError) end

-- A writer object collecting what is written to it.
local function collector()
  local c = { parts = {}, flushed = 0 }
  function c:write(...)
    for i = 1, select("#", ...) do self.parts[#self.parts + 1] = tostring((select(i, ...))) end
    return self
  end
  function c:flush() self.flushed = self.flushed + 1; return self end
  function c:text() return table.concat(self.parts) end
  return c
end

local function line_with(text, needle)
  for line in text:gmatch("[^\n]+") do
    if line:find(needle, 1, true) then return line end
  end
end

local function indent_of(line) return #line:match("^(%s*)") end

------------------------------------------------------------------ virtual clock
describe("virtual clock", function()
  it("jumps an hour in milliseconds of real time", function()
    H.run(function()
      local c0, t0 = os.clock(), aio.time()
      aio.sleep(3600)
      assert.near(3600, aio.time() - t0, 1e-6)
      assert.is_true(os.clock() - c0 < 0.5, "real time should be small")
    end, V)
  end)

  it("moves exactly to each deadline, in deadline order", function()
    H.run(function()
      local t0 = aio.time()
      local log = {}
      local tasks = {}
      for _, d in ipairs { 30, 10, 20, 10 } do
        tasks[#tasks + 1] = aio.create_task(function()
          aio.sleep(d)
          log[#log + 1] = { d, aio.time() - t0 }
        end)
      end
      for _, t in ipairs(tasks) do t:await() end
      assert.equal(4, #log)
      local expect = { 10, 10, 20, 30 }
      for i, e in ipairs(log) do
        assert.equal(expect[i], e[1])
        assert.near(e[1], e[2], 1e-6)
      end
    end, V)
  end)

  it("does not move while tasks run", function()
    H.run(function()
      local t0 = aio.time()
      local c0 = os.clock()
      while os.clock() - c0 < 0.02 do end      -- 20 ms of real work
      assert.equal(t0, aio.time())
      aio.sleep(0)
      assert.equal(t0, aio.time())
    end, V)
  end)

  it("fires call_later and call_at on virtual time", function()
    H.run(function()
      local loop = aio.get_running_loop()
      local t0 = loop:time()
      local fired = {}
      loop:call_later(100, function() fired[#fired + 1] = loop:time() - t0 end)
      loop:call_at(t0 + 50, function() fired[#fired + 1] = loop:time() - t0 end)
      aio.sleep(200)
      assert.equal(2, #fired)
      assert.near(50, fired[1], 1e-6)
      assert.near(100, fired[2], 1e-6)
    end, V)
  end)

  it("times out waits of an hour without waiting", function()
    H.run(function()
      local c0 = os.clock()
      local ok, err = pcall(aio.wait_for, function() aio.sleep(7200) end, 3600)
      assert.is_false(ok)
      assert.is_true(aio.is(err, aio.TimeoutError))
      assert.is_true(os.clock() - c0 < 0.5)
    end, V)
  end)

  it("is not the default: real time passes on the real clock", function()
    H.run(function()
      local t0 = aio.time()
      aio.sleep(0.02)
      assert.is_true(aio.time() - t0 >= 0.02)
    end)
  end)
end)

------------------------------------------------------------------ async
describe("testing.async", function()
  it("runs fn as the main task of a fresh loop, passing arguments and results", function()
    local outer_loop_task
    local f = testing.async(function(a, b)
      outer_loop_task = aio.current_task()
      aio.sleep(0)
      return b, a, nil
    end)
    local r = table.pack(f(1, 2))
    assert.same({ 2, 1, nil, n = 3 }, r)
    assert.is_not_nil(outer_loop_task)
  end)

  it("uses a new loop for each call", function()
    local loops = {}
    local f = testing.async(function() loops[#loops + 1] = aio.get_running_loop() end)
    f(); f()
    assert.equal(2, #loops)
    assert.are_not.equal(loops[1], loops[2])
  end)

  it("takes Runner options: the virtual clock", function()
    local elapsed
    local c0 = os.clock()
    testing.async(function()
      local t0 = aio.time()
      aio.sleep(3600)
      elapsed = aio.time() - t0
    end, { clock = "virtual" })()
    assert.near(3600, elapsed, 1e-6)
    assert.is_true(os.clock() - c0 < 0.5)
  end)

  it("raises the body's error unchanged", function()
    local e = {}
    local ok, err = pcall(testing.async(function() aio.sleep(0); error(e) end))
    assert.is_false(ok)
    assert.equal(e, err)
    ok, err = pcall(testing.async(function() error("plain", 0) end))
    assert.is_false(ok)
    assert.equal("plain", err)
  end)

  it("fails a body that leaves a task behind, unless told not to check", function()
    local ok, err = pcall(testing.async(function()
      aio.create_task(aio.sleep, 10)
    end))
    assert.is_false(ok)
    assert.matches("task", tostring(err))
    ok = pcall(testing.async(function()
      aio.create_task(aio.sleep, 10)
    end, { check_leftovers = false }))
    assert.is_true(ok)
  end)

  it("fails a body that leaves a timer behind", function()
    local ok, err = pcall(testing.async(function()
      aio.get_running_loop():call_later(10, function() end)
    end))
    assert.is_false(ok)
    assert.matches("the test left behind: handles=1 timers=1", tostring(err), 1, true)
  end)

  it("rejects a non-function", function()
    local ok, err = pcall(testing.async, "nope")
    assert.is_false(ok)
    assert.matches("bad argument #1 to 'async'", err, 1, true)
  end)
end)

describe("testing.install", function()
  it("complains when the calling environment has no busted `it`", function()
    local env = { require = require }
    local chunk = load("return require('luaio.testing').install()", "=nobusted", "t", env)
    local ok, err = pcall(chunk)
    assert.is_false(ok)
    assert.matches("it", tostring(err), 1, true)
  end)

  it("wraps `it` only in the environment that called it", function()
    local calls = {}
    local env = { require = require }
    env.it = function(name, fn) calls[#calls + 1] = { name, fn } end
    load([[
      require("luaio.testing").install{ clock = "virtual" }
      it("x", function() return aio_task_seen() end)
      it("pending without a body")
    ]], "=fake", "t", env)()
    assert.equal(2, #calls)
    assert.is_nil(calls[2][2])               -- no body stays no body
    local seen
    env.aio_task_seen = function()
      seen = aio.current_task()
      aio.sleep(3600)                        -- virtual: instant
      return "r"
    end
    local c0 = os.clock()
    assert.equal("r", calls[1][2]())
    assert.is_not_nil(seen)
    assert.is_true(os.clock() - c0 < 0.5)
    assert.is_not.equal(env.it, it)          -- ours is untouched
  end)
end)

------------------------------------------------------------------ dump_tasks
describe("dump_tasks", function()
  -- Sets up: main -> parent -> child (sleeping in deep_wait); runs fn(out)
  -- while they wait, then cleans up.
  local function with_tree(fn)
    H.run(function()
      aio.current_task():set_name("main-task")
      local function deep_wait() aio.sleep(100) end
      local child
      local parent = aio.create_task(function()
        child = aio.create_task(function() deep_wait() end)
        child:set_name("the-child")
        child:await()
      end)
      parent:set_name("the-parent")
      aio.sleep(0.01)
      fn()
      child:cancel()
      local ok, err = pcall(parent.await, parent)
      assert(not ok and is_cancelled(err))
    end)
  end

  it("writes names, the creation tree, what each waits on, and tracebacks", function()
    with_tree(function()
      local out = collector()
      aio.dump_tasks(out)
      local text = out:text()
      local main = line_with(text, "main-task")
      local parent = line_with(text, "the-parent")
      local child = line_with(text, "the-child")
      assert.is_not_nil(main, text)
      assert.is_not_nil(parent, text)
      assert.is_not_nil(child, text)
      -- who created whom: each level is indented under its creator
      assert.is_true(indent_of(parent) > indent_of(main), text)
      assert.is_true(indent_of(child) > indent_of(parent), text)
      -- what the child waits on, and its traceback
      assert.matches("sleep", child, 1, true)
      assert.matches("deep_wait", text, 1, true)
      assert.is_true(text:find("the-parent", 1, true) < text:find("the-child", 1, true))
      assert.is_true(out.flushed >= 1)
    end)
  end)

  it("writes to a file such as io.tmpfile()", function()
    with_tree(function()
      local f = io.tmpfile()
      aio.dump_tasks(f)
      f:seek("set")
      local text = f:read("a")
      f:close()
      assert.matches("the-parent", text, 1, true)
      assert.matches("the-child", text, 1, true)
    end)
  end)

  it("writes to io.stderr by default", function()
    with_tree(function()
      local out = collector()
      local saved = io.stderr
      io.stderr = out
      local ok, err = pcall(aio.dump_tasks)
      io.stderr = saved
      assert.is_true(ok, err)
      assert.matches("the-child", out:text(), 1, true)
    end)
  end)

  it("leaves finished tasks out", function()
    H.run(function()
      local done = aio.create_task(function() end)
      done:set_name("already-finished")
      aio.sleep(0)
      assert.is_true(done:done())
      local out = collector()
      aio.dump_tasks(out)
      assert.is_nil(line_with(out:text(), "already-finished"))
    end)
  end)
end)

------------------------------------------------------------------ install
-- Everything below runs with `it` wrapped: bodies are tasks on the virtual
-- clock, each in its own fresh loop.
describe("testing.install{clock = 'virtual'}", function()
  testing.install { clock = "virtual" }

  local previous_loop

  it("runs the body as a task", function()
    assert.is_not_nil(aio.current_task())
    previous_loop = aio.get_running_loop()
  end)

  it("gives each body a fresh loop", function()
    assert.is_not_nil(previous_loop)
    assert.are_not.equal(previous_loop, aio.get_running_loop())
  end)

  it("sleeps an hour in milliseconds", function()
    local c0, t0 = os.clock(), aio.time()
    aio.sleep(3600)
    assert.near(3600, aio.time() - t0, 1e-6)
    assert.is_true(os.clock() - c0 < 0.5)
  end)

  it("times out on the virtual clock", function()
    local ok, err = pcall(aio.wait_for, function() aio.sleep(7200) end, 3600)
    assert.is_false(ok)
    assert.is_true(aio.is(err, aio.TimeoutError))
  end)

  it("lets bodies use TaskGroups and timeouts", function()
    local r = aio.TaskGroup(function(tg)
      local a = tg:create_task(function() aio.sleep(60); return 1 end)
      local b = tg:create_task(function() aio.sleep(120); return 2 end)
      return function() return a:result() + b:result() end
    end)
    assert.equal(3, r())
  end)
end)
