-- spec/timeouts_spec.lua: aio.timeout / aio.timeout_at -- scope and function
-- forms, when/reschedule/expired, nesting (asyncio 3.13 timeouts.py).
local aio = require "luaio"
local H = require "helper"

local V = { clock = "virtual" }

local function is_cancelled(err) return aio.is(err, aio.CancelledError) end
local function is_timeout(err) return aio.is(err, aio.TimeoutError) end
local function pack(...) return { n = select("#", ...), ... } end

describe("timeout scope", function()
  it("turns its own expiry into TimeoutError at scope exit", function()
    H.run(function()
      local t0 = aio.time()
      local cm, reached
      local ok, err = pcall(function()
        cm = aio.timeout(1)
        local _ <close> = cm
        aio.sleep(10)
        reached = true
      end)
      assert.is_false(ok)
      assert.is_true(is_timeout(err))
      assert.is_false(is_cancelled(err))
      assert.is_true(aio.is(err, aio.Error))
      assert.is_nil(reached)
      assert.is_true(cm:expired())
      assert.near(1, aio.time() - t0, 1e-6)
      -- the task is not left cancelled: it may suspend again
      assert.equal(0, aio.current_task():cancelling())
      aio.sleep(0.5)
      assert.near(1.5, aio.time() - t0, 1e-6)
    end, V)
  end)

  it("leaves a scope that finishes in time alone", function()
    H.run(function()
      local t0 = aio.time()
      local cm = aio.timeout(2)
      do
        local _ <close> = cm
        aio.sleep(1)
      end
      assert.is_false(cm:expired())
      assert.near(t0 + 2, cm:when(), 1e-6)
      -- the timer is gone: sleeping past the old deadline is fine
      aio.sleep(5)
      assert.is_false(cm:expired())
    end, V)
  end)

  it("expires timeout(0) around sleep(0)", function()
    H.run(function()
      local cm
      local ok, err = pcall(function()
        cm = aio.timeout(0)
        local _ <close> = cm
        aio.sleep(0)
      end)
      assert.is_false(ok)
      assert.is_true(is_timeout(err))
      assert.is_true(cm:expired())
    end)
  end)

  it("expires a negative delay at the first suspension", function()
    H.run(function()
      local ok, err = pcall(aio.timeout, -5, function() aio.sleep(0) end)
      assert.is_false(ok)
      assert.is_true(is_timeout(err))
    end)
  end)

  it("does not expire a scope that never suspends, even with delay 0", function()
    H.run(function()
      -- asyncio: the expiry is a scheduled callback; a body that never
      -- yields leaves the scope before it runs
      local cm
      local ok = pcall(function()
        cm = aio.timeout(0)
        local _ <close> = cm
        local x = 0
        for i = 1, 100 do x = x + i end
      end)
      assert.is_true(ok)
      assert.is_false(cm:expired())
      aio.sleep(0)
    end)
  end)

  it("passes an unrelated error through unchanged", function()
    H.run(function()
      local e = {}
      local ok, err = pcall(function()
        local _ <close> = aio.timeout(10)
        aio.sleep(0.1)
        error(e)
      end)
      assert.is_false(ok)
      assert.equal(e, err)
      ok, err = pcall(aio.timeout, 10, function() error("str", 0) end)
      assert.is_false(ok)
      assert.equal("str", err)
    end, V)
  end)

  it("lets a body that swallows the cancellation finish normally", function()
    H.run(function()
      local cm
      local ok, v = pcall(function()
        cm = aio.timeout(1)
        local _ <close> = cm
        local ok2, err2 = pcall(aio.sleep, 10)
        assert(not ok2 and is_cancelled(err2))
        return "finished"
      end)
      assert.is_true(ok)
      assert.equal("finished", v)
      assert.is_true(cm:expired())
      assert.equal(0, aio.current_task():cancelling())
      aio.sleep(1)                    -- no cancellation left over
    end, V)
  end)

  it("keeps an error that replaced the cancellation in an expired scope", function()
    H.run(function()
      local ok, err = pcall(aio.timeout, 1, function()
        pcall(aio.sleep, 10)
        error("cleanup failed", 0)
      end)
      assert.is_false(ok)
      assert.equal("cleanup failed", err)
      assert.equal(0, aio.current_task():cancelling())
    end, V)
  end)

  it("lets an outside cancel() through as CancelledError, not TimeoutError", function()
    H.run(function()
      local cm
      local t = aio.create_task(function()
        cm = aio.timeout(10)
        local _ <close> = cm
        aio.sleep(100)
      end)
      aio.sleep(1)
      t:cancel()
      local ok, err = pcall(t.await, t)
      assert.is_false(ok)
      assert.is_true(is_cancelled(err))
      assert.is_false(is_timeout(err))
      assert.is_true(t:cancelled())
      assert.is_false(cm:expired())
    end, V)
  end)

  it("lets an outside cancel() win over a simultaneous expiry", function()
    H.run(function()
      local cm
      local t = aio.create_task(function()
        cm = aio.timeout(0)
        local _ <close> = cm
        aio.current_task():cancel()   -- a cancel not made by the scope
        aio.sleep(10)
      end)
      local ok, err = pcall(t.await, t)
      assert.is_false(ok)
      assert.is_true(is_cancelled(err))
      assert.is_true(t:cancelled())
      assert.is_true(cm:expired())
    end, V)
  end)

  it("lets an outside cancel() during the expired scope's cleanup through", function()
    H.run(function()
      local t = aio.create_task(function()
        local _ <close> = aio.timeout(1)
        local ok, err = pcall(aio.sleep, 10)   -- the scope's own cancellation
        assert(not ok and is_cancelled(err), tostring(err))
        aio.sleep(10)                     -- then cancelled from outside
      end)
      aio.sleep(2)
      t:cancel()
      local ok, err = pcall(t.await, t)
      assert.is_false(ok)
      assert.is_true(is_cancelled(err))
      assert.is_true(t:cancelled())
    end, V)
  end)

  it("has no deadline with delay nil until rescheduled", function()
    H.run(function()
      local t0 = aio.time()
      local cm
      local ok, err = pcall(function()
        cm = aio.timeout(nil)
        local _ <close> = cm
        assert.is_nil(cm:when())
        aio.sleep(100)              -- no deadline
        cm:reschedule(aio.time() + 5)
        assert.near(t0 + 105, cm:when(), 1e-6)
        aio.sleep(100)
      end)
      assert.is_false(ok)
      assert.is_true(is_timeout(err))
      assert.near(105, aio.time() - t0, 1e-6)
    end, V)
  end)

  it("reschedules later, earlier, and to nil", function()
    H.run(function()
      local t0 = aio.time()
      -- later
      local ok = pcall(aio.timeout, 1, function(cm)
        cm:reschedule(aio.time() + 3)
        aio.sleep(2)
      end)
      assert.is_true(ok)
      -- nil: no deadline any more
      ok = pcall(aio.timeout, 1, function(cm)
        cm:reschedule(nil)
        assert.is_nil(cm:when())
        aio.sleep(5)
      end)
      assert.is_true(ok)
      -- earlier, in the past: expires at once
      local t1 = aio.time()
      local ok2, err = pcall(aio.timeout, 10, function(cm)
        cm:reschedule(aio.time() - 1)
        aio.sleep(5)
      end)
      assert.is_false(ok2)
      assert.is_true(is_timeout(err))
      assert.near(0, aio.time() - t1, 1e-6)
      assert.near(7, aio.time() - t0, 1e-6)
    end, V)
  end)

  it("refuses reschedule() once the scope has exited", function()
    H.run(function()
      local cm = aio.timeout(1)
      do local _ <close> = cm end
      local ok, err = pcall(cm.reschedule, cm, aio.time() + 1)
      assert.is_false(ok)
      assert.is_string(err)
      assert.matches("reschedule", err, 1, true)
      local cm2 = aio.timeout(1, function(c) return c end)
      ok, err = pcall(cm2.reschedule, cm2, nil)
      assert.is_false(ok)
      assert.matches("reschedule: the timeout is finished, not active", err, 1, true)
    end)
  end)

  it("rejects a bad reschedule argument", function()
    H.run(function()
      local ok, err = pcall(aio.timeout, 1, function(cm) cm:reschedule("later") end)
      assert.is_false(ok)
      assert.matches("bad argument #1 to 'reschedule'", err, 1, true)
    end)
  end)

  it("reports when() as an absolute loop time", function()
    H.run(function()
      aio.sleep(3)
      local now = aio.time()
      local cm <close> = aio.timeout(2)
      assert.near(now + 2, cm:when(), 1e-6)
      assert.is_false(cm:expired())
    end, V)
  end)
end)

describe("timeout_at", function()
  it("expires at an absolute deadline", function()
    H.run(function()
      local t0 = aio.time()
      local cm
      local ok, err = pcall(function()
        cm = aio.timeout_at(t0 + 4)
        local _ <close> = cm
        assert.equal(t0 + 4, cm:when())
        aio.sleep(10)
      end)
      assert.is_false(ok)
      assert.is_true(is_timeout(err))
      assert.near(4, aio.time() - t0, 1e-6)
    end, V)
  end)

  it("expires at once for a deadline in the past", function()
    H.run(function()
      local ok, err = pcall(aio.timeout_at, aio.time() - 10, function() aio.sleep(1) end)
      assert.is_false(ok)
      assert.is_true(is_timeout(err))
    end, V)
  end)

  it("has a function form passing the scope and the arguments", function()
    H.run(function()
      local arg = { 1 }
      local r = pack(aio.timeout_at(aio.time() + 1, function(cm, a, b, c)
        assert.is_false(cm:expired())
        assert.equal(arg, a)
        assert.is_nil(b)
        return a, b, c
      end, arg, nil, "c"))
      assert.same({ arg, nil, "c", n = 3 }, r)
      assert.equal(arg, r[1])
    end)
  end)

  it("accepts nil (no deadline)", function()
    H.run(function()
      assert.equal("ok", aio.timeout_at(nil, function(cm)
        assert.is_nil(cm:when())
        aio.sleep(50)
        return "ok"
      end))
    end, V)
  end)
end)

describe("timeout function form", function()
  it("runs fn(cm, ...) and returns all its results, nils included", function()
    H.run(function()
      local opts = { timeout = 1 }       -- tables pass through unchanged
      local r = pack(aio.timeout(5, function(cm, a, b, c)
        assert.equal("table", type(cm))
        assert.equal(opts, a)
        aio.sleep(0.01)
        return nil, b, c, nil
      end, opts, 2, nil))
      assert.same({ nil, 2, nil, nil, n = 4 }, r)
    end)
  end)

  it("raises TimeoutError when the body is late", function()
    H.run(function()
      local t0 = aio.time()
      local seen
      local ok, err = pcall(aio.timeout, 2, function(cm)
        seen = cm
        aio.sleep(10)
        return "late"
      end)
      assert.is_false(ok)
      assert.is_true(is_timeout(err))
      assert.is_true(seen:expired())
      assert.near(2, aio.time() - t0, 1e-6)
    end, V)
  end)

  it("returns normally when the body is on time", function()
    H.run(function()
      local ok, v = pcall(aio.timeout, 2, function() aio.sleep(1); return "on time" end)
      assert.is_true(ok)
      assert.equal("on time", v)
    end, V)
  end)
end)

describe("nested timeouts", function()
  it("converts only the inner scope's expiry; the outer sees an ordinary error", function()
    H.run(function()
      local t0 = aio.time()
      local outer, inner, after_inner
      local ok, err = pcall(function()
        outer = aio.timeout(10)
        local _ <close> = outer
        local ok2, err2 = pcall(function()
          inner = aio.timeout(1)
          local _ <close> = inner
          aio.sleep(5)
        end)
        assert(not ok2 and is_timeout(err2))
        after_inner = aio.time() - t0
        aio.sleep(2)                   -- the outer scope is still alive
        return "outer done"
      end)
      assert.is_true(ok)
      assert.equal("outer done", err)
      assert.near(1, after_inner, 1e-6)
      assert.is_true(inner:expired())
      assert.is_false(outer:expired())
      assert.near(3, aio.time() - t0, 1e-6)
    end, V)
  end)

  it("lets the inner scope's TimeoutError propagate out of the outer scope unchanged", function()
    H.run(function()
      local outer, inner
      local ok, err = pcall(function()
        outer = aio.timeout(10)
        local _ <close> = outer
        inner = aio.timeout(1)
        local _ <close> = inner
        aio.sleep(5)
      end)
      assert.is_false(ok)
      assert.is_true(is_timeout(err))
      assert.is_true(inner:expired())
      assert.is_false(outer:expired())
    end, V)
  end)

  it("converts only the outer scope's expiry; the inner one passes CancelledError", function()
    H.run(function()
      local t0 = aio.time()
      local outer, inner, inner_saw
      local ok, err = pcall(function()
        outer = aio.timeout(1)
        local _ <close> = outer
        local _, err2 = pcall(function()
          inner = aio.timeout(10)
          local _ <close> = inner
          aio.sleep(5)
        end)
        inner_saw = err2
        error(err2, 0)
      end)
      assert.is_false(ok)
      assert.is_true(is_timeout(err))
      assert.is_true(is_cancelled(inner_saw))   -- not a TimeoutError inside
      assert.is_true(outer:expired())
      assert.is_false(inner:expired())
      assert.near(1, aio.time() - t0, 1e-6)
      assert.equal(0, aio.current_task():cancelling())
    end, V)
  end)

  it("raises one TimeoutError, from the outer scope, for two equal deadlines", function()
    H.run(function()
      local t0 = aio.time()
      local when = t0 + 1
      local outer, inner, reached
      local ok, err = pcall(function()
        outer = aio.timeout_at(when)
        local _ <close> = outer
        local _, err2 = pcall(function()
          inner = aio.timeout_at(when)
          local _ <close> = inner
          aio.sleep(5)
        end)
        reached = true
        error(err2, 0)
      end)
      assert.is_false(ok)
      assert.is_true(is_timeout(err))
      assert.is_true(reached)
      assert.is_true(outer:expired())
      assert.near(1, aio.time() - t0, 1e-6)
      assert.equal(0, aio.current_task():cancelling())
      aio.sleep(1)                            -- nothing left pending
    end, V)
  end)

  it("marks both scopes expired when two equal deadlines pass", function()
    -- asyncio: both deadline callbacks run in the same pass, before the
    -- task resumes; each cancels the task and enters EXPIRING.
    H.run(function()
      local when = aio.time() + 1
      local outer, inner
      pcall(function()
        outer = aio.timeout_at(when)
        local _ <close> = outer
        pcall(function()
          inner = aio.timeout_at(when)
          local _ <close> = inner
          aio.sleep(5)
        end)
      end)
      assert.is_true(outer:expired())
      assert.is_true(inner:expired())
    end, V)
  end)

  it("gives the outer scope the same outcome with equal deadlines in either creation order", function()
    H.run(function()
      local when = aio.time() + 1
      local ok, err = pcall(aio.timeout_at, nil, function(outer)
        return aio.timeout_at(when, function()
          -- the outer scope's timer is armed after the inner one's
          outer:reschedule(when)
          aio.sleep(5)
        end)
      end)
      assert.is_false(ok)
      assert.is_true(is_timeout(err))
    end, V)
  end)

  it("nests deeply and unwinds to the scope that expired", function()
    H.run(function()
      local t0 = aio.time()
      local depth_of_timeout
      local function nest(level)
        if level == 0 then aio.sleep(1000); return end
        local delay = (level == 3) and 2 or 100 + level
        local ok, err = pcall(aio.timeout, delay, function(_, l) return nest(l) end, level - 1)
        if not ok then
          if is_timeout(err) and not depth_of_timeout then depth_of_timeout = level end
          error(err, 0)
        end
      end
      local ok, err = pcall(nest, 6)
      assert.is_false(ok)
      assert.is_true(is_timeout(err))
      assert.equal(3, depth_of_timeout)
      assert.near(2, aio.time() - t0, 1e-6)
    end, V)
  end)
end)

describe("timeouts on the virtual clock", function()
  it("runs an hour of timeouts in milliseconds", function()
    H.run(function()
      local c0, t0 = os.clock(), aio.time()
      local fired = 0
      for _ = 1, 60 do
        local ok, err = pcall(aio.timeout, 60, function() aio.sleep(3600) end)
        assert(not ok and is_timeout(err))
        fired = fired + 1
      end
      assert.equal(60, fired)
      assert.near(3600, aio.time() - t0, 1e-6)
      assert.is_true(os.clock() - c0 < 1, "real time should be small")
    end, V)
  end)
end)

describe("timeout misuse", function()
  it("rejects a bad delay in the lauxlib form", function()
    H.run(function()
      local ok, err = pcall(aio.timeout, "1")
      assert.is_false(ok)
      assert.matches("bad argument #1 to 'timeout'", err, 1, true)
      ok, err = pcall(aio.timeout, 0 / 0)
      assert.is_false(ok)
      assert.matches("bad argument #1 to 'timeout'", err, 1, true)
      ok, err = pcall(aio.timeout_at, {})
      assert.is_false(ok)
      assert.matches("bad argument #1 to 'timeout_at'", err, 1, true)
      ok, err = pcall(aio.timeout, 1, "not a function")
      assert.is_false(ok)
      assert.matches("bad argument #2 to 'timeout'", err, 1, true)
    end)
  end)

  it("needs a running task (a callback is not one)", function()
    H.run(function()
      local got = {}
      local loop = aio.get_running_loop()
      loop:call_soon(function()
        got[1] = { pcall(aio.timeout, 1) }
        got[2] = { pcall(aio.timeout_at, 1) }
        got[3] = { pcall(aio.timeout, nil) }
      end)
      aio.sleep(0.01)
      assert.is_false(got[1][1])
      assert.matches("timeout", got[1][2], 1, true)
      assert.matches("task", got[1][2], 1, true)
      assert.is_false(got[2][1])
      assert.matches("timeout_at", got[2][2], 1, true)
      assert.is_false(got[3][1])
      assert.matches("timeout", got[3][2], 1, true)
    end)
  end)
end)
