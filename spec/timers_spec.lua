-- spec/timers_spec.lua: sleep, call_soon/call_later/call_at, handles,
-- timer order, the clock, callback errors, and the virtual clock.
-- Real-clock waits in this file add up to well under 0.2 s.
local aio = require "luaio"
local H = require "helper"

local VIRTUAL = { clock = "virtual" }
local function is_cancelled(err) return aio.is(err, aio.CancelledError) end
local function pack(...) return { n = select("#", ...), ... } end

-- Counts scheduler passes: returns a function reading the count, and the task.
local function ticker()
  local n = 0
  local t = aio.create_task(function()
    while true do n = n + 1; aio.sleep(0) end
  end)
  return function() return n end, t
end

local function stop(t)
  t:cancel()
  return pcall(t.await, t)
end

describe("aio.sleep", function()
  it("returns its extra arguments, nils included", function()
    H.run(function()
      assert.same({ n = 3, 1, nil, 3 }, pack(aio.sleep(0, 1, nil, 3)))
      assert.same({ n = 0 }, pack(aio.sleep(0)))
      local t = {}
      local r = pack(aio.sleep(0.001, t))
      assert.equal(1, r.n)
      assert.is_true(rawequal(t, r[1]))
    end)
  end)

  it("waits at least the delay by aio.time()", function()
    H.run(function()
      for _, d in ipairs { 0.001, 0.005, 0.01 } do
        local t0 = aio.time()
        aio.sleep(d)
        assert.is_true(aio.time() - t0 >= d, "woke early after sleep(" .. d .. ")")
      end
    end)
  end)

  it("sleep(-1) behaves as sleep(0): yields exactly once", function()
    H.run(function()
      local count, tk = ticker()
      aio.sleep(0)
      local before = count()
      assert.equal("v", aio.sleep(-1, "v"))
      assert.equal(before + 1, count())
      aio.sleep(-math.huge)
      assert.equal(before + 2, count())
      stop(tk)
    end)
  end)

  it("sleep(math.huge) waits until cancelled", function()
    H.run(function()
      local t = aio.create_task(function() aio.sleep(math.huge) end)
      aio.sleep(7 * 24 * 3600)                 -- a week of virtual time
      assert.is_false(t:done())
      t:cancel()
      local ok, err = pcall(t.await, t)
      assert.is_false(ok)
      assert.is_true(is_cancelled(err))
    end, VIRTUAL)
  end)

  it("a delay beyond the clock's range waits until cancelled", function()
    H.run(function()
      local t = aio.create_task(function() aio.sleep(1e300) end)
      aio.sleep(3600)
      assert.is_false(t:done())
      local ok, err = stop(t)
      assert.is_false(ok)
      assert.is_true(is_cancelled(err))
    end, VIRTUAL)
  end)

  it("rejects NaN", function()
    H.run(function()
      local ok, err = pcall(aio.sleep, 0 / 0)
      assert.is_false(ok)
      assert.is_string(err)
      assert.matches("NaN", err, 1, true)
    end)
  end)

  it("rejects a non-number in lauxlib form naming 'sleep'", function()
    H.run(function()
      local ok, err = pcall(aio.sleep, "x")
      assert.is_false(ok)
      assert.equal("bad argument #1 to 'sleep' (number expected, got string)", err)
      ok, err = pcall(aio.sleep)
      assert.is_false(ok)
      assert.equal("bad argument #1 to 'sleep' (number expected, got no value)", err)
    end)
  end)

  it("outside a task raises an error naming sleep and saying it needs a running task", function()
    H.run(function()
      local res
      aio.get_running_loop():call_soon(function() res = { pcall(aio.sleep, 0) } end)
      aio.sleep(0)
      assert.is_false(res[1])
      assert.matches("sleep", res[2], 1, true)
      assert.matches("needs a running task", res[2], 1, true)
    end)
  end)
end)

describe("timer order", function()
  it("fires timers in deadline order, ties in creation order", function()
    H.run(function()
      local loop = aio.get_running_loop()
      local log = {}
      local function add(x) log[#log + 1] = x end
      loop:call_later(0.3, add, "c")
      loop:call_later(0.1, add, "a1")
      loop:call_later(0.2, add, "b1")
      loop:call_later(0.2, add, "b2")
      loop:call_later(0.1, add, "a2")
      loop:call_later(0.2, add, "b3")
      aio.sleep(1)
      assert.same({ "a1", "a2", "b1", "b2", "b3", "c" }, log)
    end, VIRTUAL)
  end)

  it("wakes sleeping tasks in deadline order, ties in creation order", function()
    H.run(function()
      local log = {}
      local ts = {}
      for i, d in ipairs { 0.5, 0.1, 0.5, 0.2, 0.1 } do
        ts[i] = aio.create_task(function()
          aio.sleep(d)
          log[#log + 1] = i
        end)
      end
      for i = 1, #ts do ts[i]:await() end
      assert.same({ 2, 5, 4, 1, 3 }, log)
    end, VIRTUAL)
  end)

  it("orders call_at and call_later by deadline alone", function()
    H.run(function()
      local loop = aio.get_running_loop()
      local log = {}
      local now = loop:time()
      loop:call_at(now + 2, function() log[#log + 1] = "at2" end)
      loop:call_later(1, function() log[#log + 1] = "later1" end)
      loop:call_at(now + 1.5, function() log[#log + 1] = "at1.5" end)
      aio.sleep(3)
      assert.same({ "later1", "at1.5", "at2" }, log)
    end, VIRTUAL)
  end)

  it("never fires a timer before its deadline by aio.time()", function()
    H.run(function()
      local loop = aio.get_running_loop()
      local early = {}
      local fired = 0
      for i = 1, 10 do
        local h
        h = loop:call_later(i * 0.002, function()
          fired = fired + 1
          local now = aio.time()
          if now < h:when() then early[#early + 1] = h:when() - now end
        end)
      end
      aio.sleep(0.025)
      assert.equal(10, fired)
      assert.same({}, early)
    end)
  end)

  it("runs a call_at with a past time soon, after what is already ready", function()
    H.run(function()
      local loop = aio.get_running_loop()
      local log = {}
      loop:call_at(loop:time() - 10, function() log[#log + 1] = "past" end)
      loop:call_soon(function() log[#log + 1] = "soon" end)
      aio.sleep(0)
      aio.sleep(0)
      assert.same({ "soon", "past" }, log)
    end)
  end)

  it("runs call_later(0) and call_later(-1) on a following pass", function()
    H.run(function()
      local loop = aio.get_running_loop()
      local log = {}
      loop:call_later(-1, function() log[#log + 1] = "neg" end)
      loop:call_later(0, function() log[#log + 1] = "zero" end)
      assert.same({}, log)
      aio.sleep(0); aio.sleep(0)
      assert.same({ "neg", "zero" }, log)
    end)
  end)
end)

describe("callbacks and handles", function()
  it("call_soon passes its extra arguments unchanged", function()
    H.run(function()
      local got
      local tbl = {}
      aio.get_running_loop():call_soon(function(...) got = pack(...) end, 1, nil, tbl, nil)
      aio.sleep(0)
      assert.equal(4, got.n)
      assert.equal(1, got[1])
      assert.is_nil(got[2])
      assert.is_true(rawequal(tbl, got[3]))
    end)
  end)

  it("call_later and call_at pass extra arguments too", function()
    H.run(function()
      local loop = aio.get_running_loop()
      local a, b
      loop:call_later(0.5, function(...) a = pack(...) end, "x", nil)
      loop:call_at(loop:time() + 0.5, function(...) b = pack(...) end, nil, "y")
      aio.sleep(1)
      assert.same({ n = 2, "x", nil }, a)
      assert.same({ n = 2, nil, "y" }, b)
    end, VIRTUAL)
  end)

  it("call_later's handle reports its deadline in loop time", function()
    H.run(function()
      local loop = aio.get_running_loop()
      local before = loop:time()
      local h = loop:call_later(10, function() end)
      local after = loop:time()
      assert.is_true(h:when() >= before + 10 and h:when() <= after + 10)
      local h2 = loop:call_at(before + 5, function() end)
      assert.equal(before + 5, h2:when())
      h:cancel(); h2:cancel()
    end)
  end)

  it("a cancelled call_later never fires and leaves no timer", function()
    H.run(function()
      local loop = aio.get_running_loop()
      local fired = false
      local h = loop:call_later(1, function() fired = true end)
      assert.is_false(h:cancelled())
      assert.equal(1, loop:stats().timers)
      h:cancel()
      assert.is_true(h:cancelled())
      assert.equal(0, loop:stats().timers)
      aio.sleep(2)
      assert.is_false(fired)
      h:cancel()                          -- again: harmless
      assert.is_true(h:cancelled())
    end, VIRTUAL)
  end)

  it("a cancelled call_soon handle never runs", function()
    H.run(function()
      local loop = aio.get_running_loop()
      local fired = false
      local h = loop:call_soon(function() fired = true end)
      h:cancel()
      assert.is_true(h:cancelled())
      aio.sleep(0); aio.sleep(0)
      assert.is_false(fired)
    end)
  end)

  it("cancelling a handle after it fired is harmless", function()
    H.run(function()
      local loop = aio.get_running_loop()
      local n = 0
      local h = loop:call_later(0.001, function() n = n + 1 end)
      aio.sleep(0.01)
      assert.equal(1, n)
      h:cancel()
      aio.sleep(0)
      assert.equal(1, n)
    end)
  end)

  it("a callback may cancel a later timer", function()
    H.run(function()
      local loop = aio.get_running_loop()
      local log = {}
      local h2
      loop:call_later(1, function() log[#log + 1] = 1; h2:cancel() end)
      h2 = loop:call_later(2, function() log[#log + 1] = 2 end)
      aio.sleep(3)
      assert.same({ 1 }, log)
    end, VIRTUAL)
  end)

  it("an erroring callback goes to the exception handler and the loop carries on", function()
    local log = {}
    local reports = H.reports(function()
      local loop = aio.get_running_loop()
      loop:call_soon(function() log[#log + 1] = "before" end)
      local h = loop:call_soon(function() error("callback broke", 0) end)
      loop:call_soon(function() log[#log + 1] = "after" end)
      loop:call_later(0.001, function() error({ tag = "timer" }) end)
      aio.sleep(0.01)
      log[#log + 1] = "main"
      log.h = h
    end)
    assert.same({ "before", "after", "main" }, { log[1], log[2], log[3] })
    assert.equal(2, #reports)
    assert.is_string(reports[1].message)
    assert.equal("callback broke", reports[1].exception)
    assert.equal(log.h, reports[1].handle)
    assert.same({ tag = "timer" }, reports[2].exception)
  end)

  it("suspending inside a callback raises the outside-a-task error", function()
    H.run(function()
      local loop = aio.get_running_loop()
      local res = {}
      loop:call_soon(function()
        res.sleep = { pcall(aio.sleep, 0) }
        res.task = aio.current_task()
      end)
      loop:call_later(0.001, function()
        res.timer = { pcall(aio.sleep, 1) }
      end)
      aio.sleep(0.01)
      assert.is_false(res.sleep[1])
      assert.matches("needs a running task", res.sleep[2], 1, true)
      assert.is_false(res.timer[1])
      assert.matches("needs a running task", res.timer[2], 1, true)
      assert.is_nil(res.task)
    end)
  end)

  it("an unhandled suspension in a callback is reported, not a crash", function()
    local reports = H.reports(function()
      aio.get_running_loop():call_soon(function() aio.sleep(1) end)
      aio.sleep(0); aio.sleep(0)
    end)
    assert.equal(1, #reports)
    assert.matches("needs a running task", tostring(reports[1].exception), 1, true)
  end)

  it("rejects bad arguments to call_soon, call_later and call_at", function()
    H.run(function()
      local loop = aio.get_running_loop()
      local ok, err = pcall(loop.call_soon, loop, 42)
      assert.is_false(ok)
      assert.matches("bad argument", err, 1, true)
      assert.matches("call_soon", err, 1, true)
      ok, err = pcall(loop.call_later, loop, "x", function() end)
      assert.is_false(ok)
      assert.matches("bad argument", err, 1, true)
      assert.matches("call_later", err, 1, true)
      ok, err = pcall(loop.call_later, loop, 1, "notfn")
      assert.is_false(ok)
      assert.matches("bad argument", err, 1, true)
      ok, err = pcall(loop.call_later, loop, 0 / 0, function() end)
      assert.is_false(ok)
      assert.matches("NaN", err, 1, true)
      ok, err = pcall(loop.call_at, loop, 0 / 0, function() end)
      assert.is_false(ok)
      assert.matches("NaN", err, 1, true)
      assert.equal(0, loop:stats().timers)
      assert.equal(0, loop:stats().handles)
    end)
  end)
end)

describe("the clock", function()
  it("loop:time() and aio.time() read the same monotonic clock", function()
    H.run(function()
      local loop = aio.get_running_loop()
      local a = aio.time()
      local b = loop:time()
      local c = aio.time()
      assert.is_true(a <= b and b <= c)
      assert.is_true(c - a < 0.5)   -- one clock: not seconds vs milliseconds
    end)
  end)

  it("aio.time() is read fresh, not cached per loop iteration", function()
    H.run(function()
      local t0 = aio.time()
      local c0 = os.clock()
      while os.clock() - c0 < 0.005 do end     -- busy for 5 ms of CPU
      assert.is_true(aio.time() - t0 >= 0.004)
    end)
  end)
end)

describe("the virtual clock", function()
  it("runs an hour of sleeps in well under a second of real time", function()
    local c0, w0 = os.clock(), os.time()
    local elapsed = H.run(function()
      local t0 = aio.time()
      local ts = {}
      for i = 1, 10 do
        ts[i] = aio.create_task(function()
          for _ = 1, 6 do aio.sleep(60) end      -- 10 tasks x 6 minutes
        end)
      end
      for i = 1, 10 do ts[i]:await() end
      aio.sleep(3600 - 360)
      return aio.time() - t0
    end, VIRTUAL)
    assert.is_true(elapsed >= 3600)
    assert.is_true(elapsed < 3600 + 1)
    assert.is_true(os.clock() - c0 < 1)
    assert.is_true(os.time() - w0 <= 1)
  end)

  it("jumps to exactly the next deadline", function()
    H.run(function()
      local t0 = aio.time()
      aio.sleep(100)
      local d = aio.time() - t0
      assert.is_true(d >= 100 and d < 100.001, "jumped by " .. d)
      local loop = aio.get_running_loop()
      local at
      loop:call_later(5, function() at = aio.time() end)
      aio.sleep(10)
      assert.is_true(at - t0 >= 105 and at - t0 < 105.001)
    end, VIRTUAL)
  end)

  it("does not jump while tasks are ready", function()
    H.run(function()
      local t0 = aio.time()
      local fired = false
      aio.get_running_loop():call_later(60, function() fired = true end)
      for _ = 1, 100 do aio.sleep(0) end
      assert.is_false(fired)
      assert.is_true(aio.time() - t0 < 1)
      aio.sleep(61)
      assert.is_true(fired)
    end, VIRTUAL)
  end)
end)
