-- spec/combinators_spec.lua: gather, wait, wait_for, as_completed, shield
-- (asyncio 3.13 tasks.py semantics, in Lua's spelling).
local aio = require "luaio"
local H = require "helper"

local V = { clock = "virtual" }

local function is_cancelled(err) return aio.is(err, aio.CancelledError) end
local function is_timeout(err) return aio.is(err, aio.TimeoutError) end
local function pack(...) return { n = select("#", ...), ... } end

-- A task that sleeps `delay` then returns `value` (or raises it if `fail`).
local function after(delay, value, fail)
  return aio.create_task(function()
    aio.sleep(delay)
    if fail then error(value, 0) end
    return value
  end)
end

------------------------------------------------------------------ gather
describe("gather", function()
  it("returns the first result of each child in input order, with .n", function()
    H.run(function()
      local r = aio.gather({
        after(0.03, "slow"),
        function() aio.sleep(0.01); return "fn", "second value dropped" end,
        after(0.02, "mid"),
      })
      assert.equal(3, r.n)
      assert.same({ "slow", "fn", "mid", n = 3 }, r)
    end, V)
  end)

  it("keeps nil results in their slots (.n counts them)", function()
    H.run(function()
      local r = aio.gather({
        function() return nil end,
        function() return 2 end,
        function() end,
        function() aio.sleep(0); return nil, "ignored" end,
      })
      assert.equal(4, r.n)
      assert.is_nil(r[1])
      assert.equal(2, r[2])
      assert.is_nil(r[3])
      assert.is_nil(r[4])
    end)
  end)

  it("returns an empty list with n = 0 for an empty input", function()
    H.run(function()
      local r = aio.gather({})
      assert.equal(0, r.n)
      assert.is_nil(r[1])
    end)
  end)

  it("accepts tasks, futures, functions and values with __await", function()
    H.run(function()
      local fut = aio.Future()
      aio.get_running_loop():call_later(0.01, function() fut:set_result("fut") end)
      local awaitable = setmetatable({}, {
        __await = function() aio.sleep(0.01); return "custom" end,
      })
      local r = aio.gather({ after(0.01, "task"), fut, function() return "fn" end, awaitable })
      assert.same({ "task", "fut", "fn", "custom", n = 4 }, r)
    end)
  end)

  it("spawns functions as tasks (they run concurrently)", function()
    H.run(function()
      local t0 = aio.time()
      local fns = {}
      for i = 1, 10 do fns[i] = function() aio.sleep(1); return i end end
      local r = aio.gather(fns)
      assert.equal(10, r.n)
      for i = 1, 10 do assert.equal(i, r[i]) end
      assert.near(1, aio.time() - t0, 1e-6)
    end, V)
  end)

  it("fills every slot of an awaitable given twice", function()
    H.run(function()
      local t = after(0.01, "x")
      local r = aio.gather({ t, t, after(0, "y") })
      assert.same({ "x", "x", "y", n = 3 }, r)
    end)
  end)

  -- A pending task names its gather by pointer alone: the gather must live
  -- through full collections while nothing but its tasks refers to it.
  it("finishes when only its tasks refer to it, across full collections", function()
    H.guarded(function()
      local done = aio.Future()
      local function child(v)
        return aio.create_task(function()
          for _ = 1, 3 do collectgarbage(); aio.sleep(0) end
          return v
        end)
      end
      -- the only reference to the gather is the task that awaits it, and
      -- that task is referred to by nothing but its coroutine
      aio.create_task(function()
        done:set_result(aio.gather({ child(1), child(2), child(3) }))
      end)
      collectgarbage()
      local r = done:await()
      assert.same({ 1, 2, 3, n = 3 }, r)
    end)
  end)

  it("runs a child's later done callbacks beside the gather's, and removes them", function()
    H.run(function()
      local order = {}
      local t = aio.create_task(function() aio.sleep(0); return "v" end)
      local g = aio.create_task(function()
        local r = aio.gather({ t, after(0.01, "w") })
        order[#order + 1] = "gather"
        return r
      end)
      aio.sleep(0)                  -- g has started: its gather watches t
      local function late() order[#order + 1] = "late" end
      local function gone() order[#order + 1] = "gone" end
      assert.equal(0, t:remove_done_callback(late))   -- the gather's stays
      t:add_done_callback(late)
      t:add_done_callback(gone)
      assert.equal(1, t:remove_done_callback(gone))
      assert.same({ "v", "w", n = 2 }, g:await())
      assert.same({ "late", "gather" }, order)
    end)
  end)

  it("takes children that are done already, and the first of several results", function()
    H.run(function()
      local f = aio.Future()
      f:set_result("ready", "ignored")
      local t = aio.create_task(function() return "a", "b" end)
      aio.sleep(0)
      assert.is_true(t:done())
      local r = aio.gather({ f, t, function() return nil, 2 end })
      assert.same({ "ready", "a", nil, n = 3 }, r)
    end)
  end)

  it("cancels a child listed twice once, and fills both slots", function()
    H.run(function()
      local seen
      local child = aio.create_task(function()
        local _, err = pcall(aio.sleep, 10)
        seen = aio.current_task():cancelling()
        error(err, 0)
      end)
      local f = aio.Future()
      local g = aio.create_task(function()
        return aio.gather({ child, f, child, f }, { return_exceptions = true })
      end)
      aio.sleep(0.01)
      assert.is_true(g:cancel("stop"))
      local ok, err = pcall(g.await, g)
      assert.is_false(ok)
      assert.is_true(is_cancelled(err))
      assert.equal(1, seen)
      assert.is_true(child:cancelled())
      assert.is_true(f:cancelled())
    end, V)
  end)

  it("passes the cancel message on to the children", function()
    H.run(function()
      local seen
      local child = aio.create_task(function()
        local _, err = pcall(aio.sleep, 10)
        seen = err
        error(err, 0)
      end)
      local g = aio.create_task(function() return aio.gather({ child }) end)
      aio.sleep(0.01)
      g:cancel("why")
      local ok, err = pcall(g.await, g)
      assert.is_false(ok)
      assert.is_true(is_cancelled(err))
      assert.equal("why", err.message)
      assert.is_true(is_cancelled(seen))
      assert.equal("why", seen.message)
    end, V)
  end)

  it("cancels the children of a gather inside a gather", function()
    H.run(function()
      local a, b, c = after(10, 1), after(10, 2), after(0.01, 3)
      local g = aio.create_task(function()
        return aio.gather({ function() return aio.gather({ a, b }) end, c })
      end)
      aio.sleep(0.05)
      assert.is_true(c:done())
      g:cancel()
      local ok, err = pcall(g.await, g)
      assert.is_false(ok)
      assert.is_true(is_cancelled(err))
      assert.is_true(a:cancelled())
      assert.is_true(b:cancelled())
    end, V)
  end)

  it("leaves no error of a child unretrieved once it has raised", function()
    local reports = H.reports(function()
      local ok, err = pcall(aio.gather, {
        function() error("first", 0) end,
        function() aio.sleep(0.01); error("second", 0) end,
      })
      assert.is_false(ok)
      assert.equal("first", err)
      aio.sleep(0.05)
    end)
    assert.same({}, reports)
  end)

  it("blames the caller for a value in the list that cannot be awaited", function()
    H.run(function()
      local function call() local r = aio.gather({ function() end, 42 }); return r end
      local ok, err = pcall(call)
      assert.is_false(ok)
      assert.matches("combinators_spec.lua:%d+: bad argument #1 to 'gather' %(list of awaitables expected, got number in it%)", err)
    end)
  end)

  it("raises the first error unchanged while the others keep running", function()
    H.run(function()
      local e = setmetatable({ what = "first" }, { __tostring = function() return "first" end })
      local t0 = aio.time()
      local bad = after(0.01, e, true)
      local worse = after(0.02, "second", true)
      local slow = after(0.05, "slow")
      local ok, err = pcall(aio.gather, { bad, worse, slow })
      assert.is_false(ok)
      assert.equal(e, err)                      -- the same table
      assert.near(0.01, aio.time() - t0, 1e-6)   -- raised at once
      assert.is_false(slow:done())              -- still running, not cancelled
      assert.is_false(worse:done())
      assert.equal("slow", slow:await())
      assert.is_false(slow:cancelled())
      local ok2, err2 = pcall(worse.await, worse)
      assert.is_false(ok2)
      assert.equal("second", err2)
    end, V)
  end)

  it("keeps a string error that string", function()
    H.run(function()
      local ok, err = pcall(aio.gather, { function() error("plain", 0) end })
      assert.is_false(ok)
      assert.equal("plain", err)
    end)
  end)

  it("returns errors in their slots with return_exceptions = true", function()
    H.run(function()
      local e = aio.TimeoutError()
      local r = aio.gather({
        function() return 1 end,
        function() aio.sleep(0.01); error("boom", 0) end,
        function() error(e, 0) end,
      }, { return_exceptions = true })
      assert.equal(3, r.n)
      assert.equal(1, r[1])
      assert.equal("boom", r[2])
      assert.equal(e, r[3])
    end)
  end)

  it("puts a CancelledError in the slot of a cancelled child with return_exceptions", function()
    H.run(function()
      local victim = after(10, "never")
      local ok_child = after(0.02, "ok")
      aio.get_running_loop():call_later(0.01, function() victim:cancel() end)
      local r = aio.gather({ victim, ok_child }, { return_exceptions = true })
      assert.equal(2, r.n)
      assert.is_true(is_cancelled(r[1]))
      assert.equal("ok", r[2])
      assert.is_true(victim:cancelled())
      assert.equal(0, aio.current_task():cancelling())
    end, V)
  end)

  it("raises CancelledError when a child is cancelled without return_exceptions", function()
    H.run(function()
      local victim = after(10, "never")
      local other = after(0.05, "other")
      aio.get_running_loop():call_later(0.01, function() victim:cancel() end)
      local ok, err = pcall(aio.gather, { victim, other })
      assert.is_false(ok)
      assert.is_true(is_cancelled(err))
      -- the caller itself was not cancelled; the sibling keeps running
      assert.equal(0, aio.current_task():cancelling())
      assert.is_false(other:done())
      assert.equal("other", other:await())
    end, V)
  end)

  it("cancels every child when the gather is cancelled, and raises after they unwind", function()
    H.run(function()
      local log = {}
      local function child(name)
        return function()
          local _, err = pcall(aio.sleep, 10)
          log[#log + 1] = name .. " cancelled"
          aio.sleep(0.5)              -- cleanup that suspends
          log[#log + 1] = name .. " cleaned"
          error(err, 0)
        end
      end
      local c1, c2 = aio.create_task(child("a")), aio.create_task(child("b"))
      local g = aio.create_task(function() return aio.gather({ c1, c2 }) end)
      aio.sleep(0.1)
      assert.is_true(g:cancel())
      local ok, err = pcall(g.await, g)
      assert.is_false(ok)
      assert.is_true(is_cancelled(err))
      assert.is_true(g:cancelled())
      assert.is_true(c1:cancelled())
      assert.is_true(c2:cancelled())
      table.sort(log)
      assert.same({ "a cancelled", "a cleaned", "b cancelled", "b cleaned" }, log)
    end, V)
  end)

  it("cancels the children of a gather with return_exceptions too, raising CancelledError", function()
    H.run(function()
      local c1, c2 = after(10, 1), after(10, 2)
      local g = aio.create_task(function()
        return aio.gather({ c1, c2 }, { return_exceptions = true })
      end)
      aio.sleep(0.1)
      g:cancel()
      local ok, err = pcall(g.await, g)
      assert.is_false(ok)
      assert.is_true(is_cancelled(err))
      assert.is_true(c1:cancelled())
      assert.is_true(c2:cancelled())
    end, V)
  end)

  it("cancels function children it spawned when cancelled", function()
    H.run(function()
      local started, finished = 0, 0
      local function fn()
        return function() started = started + 1; aio.sleep(10); finished = finished + 1 end
      end
      local g = aio.create_task(aio.gather, { fn(), fn(), fn() })
      aio.sleep(0.1)
      g:cancel()
      local ok, err = pcall(g.await, g)
      assert.is_false(ok)
      assert.is_true(is_cancelled(err))
      assert.equal(3, started)
      assert.equal(0, finished)
      -- H.run checks that no child was left running
    end, V)
  end)

  it("rejects bad arguments in the lauxlib form", function()
    H.run(function()
      local ok, err = pcall(aio.gather, 5)
      assert.is_false(ok)
      assert.matches("bad argument #1 to 'gather'", err, 1, true)
      ok, err = pcall(aio.gather, { 1, 2 })
      assert.is_false(ok)
      assert.matches("bad argument #1 to 'gather'", err, 1, true)
      ok, err = pcall(aio.gather, {}, 5)
      assert.is_false(ok)
      assert.matches("bad argument #2 to 'gather'", err, 1, true)
    end)
  end)

  it("blames the caller, not luaio's internals, for a bad argument", function()
    H.run(function()
      -- lauxlib's luaL_argerror never names a file of the library itself
      local cases = {
        { "gather", function() return aio.gather("nope") end },
        { "gather", function() return aio.gather({}, "nope") end },
        { "wait", function() return aio.wait("nope") end },
        { "as_completed", function() return aio.as_completed("nope") end },
      }
      for _, c in ipairs(cases) do
        local ok, err = pcall(c[2])
        assert.is_false(ok)
        assert.matches("bad argument #%d to '" .. c[1] .. "'", err)
        assert.not_matches("combinators", err, 1, true)
      end
    end)
  end)
end)

------------------------------------------------------------------ wait
describe("wait", function()
  it("waits for all by default: done in completion order, pending empty", function()
    H.run(function()
      local t0 = aio.time()
      local t1, t2, t3 = after(0.03, 1), after(0.01, 2), after(0.02, 3)
      local done, pending = aio.wait({ t1, t2, t3 })
      assert.same({ t2, t3, t1 }, done)
      assert.same({}, pending)
      assert.near(0.03, aio.time() - t0, 1e-6)
    end, V)
  end)

  it("returns at the first completion with FIRST_COMPLETED; pending in input order", function()
    H.run(function()
      local t0 = aio.time()
      local t1, t2, t3 = after(3, 1), after(1, 2), after(2, 3)
      local done, pending = aio.wait({ t1, t2, t3 }, { return_when = aio.FIRST_COMPLETED })
      assert.near(1, aio.time() - t0, 1e-6)
      assert.same({ t2 }, done)
      assert.same({ t1, t3 }, pending)
      assert.is_false(t1:done())
      assert.is_false(t3:done())
      assert.equal(1, t1:await())
      assert.equal(3, t3:await())
    end, V)
  end)

  it("returns at the first error with FIRST_EXCEPTION", function()
    H.run(function()
      local t0 = aio.time()
      local ok1 = after(1, "ok")
      local bad = after(2, "bad", true)
      local slow = after(5, "slow")
      local done, pending = aio.wait({ slow, bad, ok1 }, { return_when = aio.FIRST_EXCEPTION })
      assert.near(2, aio.time() - t0, 1e-6)
      assert.same({ ok1, bad }, done)
      assert.same({ slow }, pending)
      assert.equal("bad", bad:exception())
      assert.is_false(slow:cancelled())
      assert.equal("slow", slow:await())
    end, V)
  end)

  it("acts as ALL_COMPLETED with FIRST_EXCEPTION when nothing fails", function()
    H.run(function()
      local t0 = aio.time()
      local a, b = after(1, "a"), after(2, "b")
      local done, pending = aio.wait({ a, b }, { return_when = aio.FIRST_EXCEPTION })
      assert.near(2, aio.time() - t0, 1e-6)
      assert.same({ a, b }, done)
      assert.same({}, pending)
    end, V)
  end)

  it("does not count a cancelled task as an exception for FIRST_EXCEPTION", function()
    H.run(function()
      local victim, b = after(10, "v"), after(2, "b")
      aio.get_running_loop():call_later(1, function() victim:cancel() end)
      local done, pending = aio.wait({ victim, b }, { return_when = aio.FIRST_EXCEPTION })
      assert.same({ victim, b }, done)
      assert.same({}, pending)
      assert.is_true(victim:cancelled())
    end, V)
  end)

  it("returns on timeout without cancelling anything", function()
    H.run(function()
      local t0 = aio.time()
      local a, b = after(1, "a"), after(10, "b")
      local done, pending = aio.wait({ b, a }, { timeout = 5 })
      assert.near(5, aio.time() - t0, 1e-6)
      assert.same({ a }, done)
      assert.same({ b }, pending)
      assert.is_false(b:done())
      assert.is_false(b:cancelled())
      assert.equal("b", b:await())
      assert.near(10, aio.time() - t0, 1e-6)
    end, V)
  end)

  it("with timeout and FIRST_COMPLETED returns empty done when nothing finished", function()
    H.run(function()
      local a = after(10, "a")
      local done, pending = aio.wait({ a }, { timeout = 1, return_when = aio.FIRST_COMPLETED })
      assert.same({}, done)
      assert.same({ a }, pending)
      assert.equal("a", a:await())
    end, V)
  end)

  it("accepts futures and already finished tasks", function()
    H.run(function()
      local fut = aio.Future()
      local done_task = after(0, "d")
      aio.sleep(0.01)
      assert.is_true(done_task:done())
      aio.get_running_loop():call_later(0.01, function() fut:set_result(nil) end)
      local done, pending = aio.wait({ fut, done_task })
      assert.equal(2, #done)
      assert.same({}, pending)
      assert.is_true(fut:done())
    end)
  end)

  it("leaves the tasks alone when the caller is cancelled", function()
    H.run(function()
      local a = after(1, "a")
      local w = aio.create_task(aio.wait, { a })
      aio.sleep(0.1)
      w:cancel()
      local ok, err = pcall(w.await, w)
      assert.is_false(ok)
      assert.is_true(is_cancelled(err))
      assert.is_false(a:cancelled())
      assert.equal("a", a:await())
    end, V)
  end)

  it("refuses functions (asyncio 3.11+ takes tasks and futures only)", function()
    H.run(function()
      local ok, err = pcall(aio.wait, { function() end })
      assert.is_false(ok)
      assert.matches("bad argument #1 to 'wait'", err, 1, true)
    end)
  end)

  it("rejects bad arguments", function()
    H.run(function()
      local t = after(0, 1)
      local ok, err = pcall(aio.wait, "x")
      assert.is_false(ok)
      assert.matches("bad argument #1 to 'wait'", err, 1, true)
      ok, err = pcall(aio.wait, {})
      assert.is_false(ok)
      assert.matches("wait", err, 1, true)
      ok, err = pcall(aio.wait, { t }, { return_when = "SOMETIMES" })
      assert.is_false(ok)
      assert.matches("bad argument #2 to 'wait'", err, 1, true)
      ok, err = pcall(aio.wait, { t }, { timeout = "soon" })
      assert.is_false(ok)
      assert.matches("to 'wait'", err, 1, true)
      ok, err = pcall(aio.wait, { t }, 3)
      assert.is_false(ok)
      assert.matches("bad argument #2 to 'wait'", err, 1, true)
      t:await()
    end)
  end)
end)

------------------------------------------------------------------ wait_for
describe("wait_for", function()
  it("returns every result, nils included", function()
    H.run(function()
      local r = pack(aio.wait_for(aio.create_task(function()
        aio.sleep(0.01); return 1, nil, 3, nil
      end), 1))
      assert.equal(4, r.n)
      assert.same({ 1, nil, 3, nil, n = 4 }, r)
    end)
  end)

  it("accepts a function and returns its results", function()
    H.run(function()
      local r = pack(aio.wait_for(function() aio.sleep(0.01); return nil, "b" end, 1))
      assert.same({ nil, "b", n = 2 }, r)
    end)
  end)

  it("waits forever when the timeout is nil", function()
    H.run(function()
      local t0 = aio.time()
      assert.equal("late", aio.wait_for(after(3600, "late"), nil))
      assert.near(3600, aio.time() - t0, 1e-6)
    end, V)
  end)

  it("on timeout cancels the awaitable, waits for it, and raises TimeoutError", function()
    H.run(function()
      local t0 = aio.time()
      local log = {}
      local t = aio.create_task(function()
        local _, err = pcall(aio.sleep, 100)
        log[#log + 1] = "cancelled"
        aio.sleep(2)                 -- cleanup takes a while
        log[#log + 1] = "cleaned"
        error(err, 0)
      end)
      local ok, err = pcall(aio.wait_for, t, 1)
      assert.is_false(ok)
      assert.is_true(is_timeout(err))
      assert.is_true(aio.is(err, aio.Error))
      assert.same({ "cancelled", "cleaned" }, log)   -- waited for it
      assert.is_true(t:cancelled())
      assert.near(3, aio.time() - t0, 1e-6)
      assert.equal(0, aio.current_task():cancelling())
    end, V)
  end)

  it("cancels a future on timeout", function()
    H.run(function()
      local fut = aio.Future()
      local ok, err = pcall(aio.wait_for, fut, 0.01)
      assert.is_false(ok)
      assert.is_true(is_timeout(err))
      assert.is_true(fut:cancelled())
    end)
  end)

  it("gives the value of a task that swallows the cancellation", function()
    H.run(function()
      local t = aio.create_task(function()
        local ok, err = pcall(aio.sleep, 100)
        assert(not ok and is_cancelled(err), tostring(err))
        aio.sleep(0.5)
        return "swallowed", nil, 3
      end)
      local r = pack(aio.wait_for(t, 1))
      assert.same({ "swallowed", nil, 3, n = 3 }, r)
      assert.is_false(t:cancelled())
      -- the caller's own cancellation count is back to zero
      assert.equal(0, aio.current_task():cancelling())
      aio.sleep(0.01)                -- and no cancellation is pending
    end, V)
  end)

  it("with timeout 0 returns a finished task's result", function()
    H.run(function()
      local t = after(0, "done")
      aio.sleep(0.01)
      assert.equal("done", aio.wait_for(t, 0))
    end)
  end)

  it("with timeout 0 cancels a pending task and raises TimeoutError", function()
    H.run(function()
      local t = after(1, "x")
      local ok, err = pcall(aio.wait_for, t, 0)
      assert.is_false(ok)
      assert.is_true(is_timeout(err))
      assert.is_true(t:cancelled())
      ok, err = pcall(aio.wait_for, after(1, "y"), -1)
      assert.is_false(ok)
      assert.is_true(is_timeout(err))
    end)
  end)

  it("passes the awaitable's error through unchanged", function()
    H.run(function()
      local e = {}
      local ok, err = pcall(aio.wait_for, after(0.01, e, true), 1)
      assert.is_false(ok)
      assert.equal(e, err)
      ok, err = pcall(aio.wait_for, after(0.01, "str", true), 1)
      assert.is_false(ok)
      assert.equal("str", err)
    end)
  end)

  it("raises CancelledError, not TimeoutError, when the caller is cancelled", function()
    H.run(function()
      local inner = after(100, "x")
      local caller = aio.create_task(aio.wait_for, inner, 10)
      aio.sleep(1)
      caller:cancel()
      local ok, err = pcall(caller.await, caller)
      assert.is_false(ok)
      assert.is_true(is_cancelled(err))
      assert.is_false(is_timeout(err))
      assert.is_true(inner:cancelled())    -- cancelling the caller cancels aw
      assert.is_true(caller:cancelled())
    end, V)
  end)

  it("composes with an enclosing timeout scope", function()
    H.run(function()
      -- the outer scope expires first: TimeoutError comes from the outer scope
      local ok, err = pcall(aio.timeout, 1, function()
        local ok2, err2 = pcall(aio.wait_for, after(100, "x"), 10)
        assert.is_false(ok2)
        assert.is_true(is_cancelled(err2))   -- not the inner's TimeoutError
        error(err2, 0)
      end)
      assert.is_false(ok)
      assert.is_true(is_timeout(err))
      -- wait_for expires first: the outer scope sees an ordinary TimeoutError
      local cm_expired, ok2, err2
      ok, err = pcall(aio.timeout, 10, function(cm)
        ok2, err2 = pcall(aio.wait_for, after(100, "x"), 1)
        cm_expired = cm:expired()
      end)
      assert.is_true(ok, tostring(err))
      assert.is_false(cm_expired)
      assert.is_false(ok2)
      assert.is_true(is_timeout(err2), tostring(err2))
    end, V)
  end)

  it("rejects a bad timeout and a bad awaitable", function()
    H.run(function()
      local ok, err = pcall(aio.wait_for, aio.Future(), "soon")
      assert.is_false(ok)
      assert.matches("bad argument #2 to 'wait_for'", err, 1, true)
      ok, err = pcall(aio.wait_for, 42, 1)
      assert.is_false(ok)
      assert.matches("bad argument #1 to 'wait_for'", err, 1, true)
    end)
  end)
end)

------------------------------------------------------------------ as_completed
describe("as_completed", function()
  it("yields the awaitables themselves in completion order", function()
    H.run(function()
      local t1, t2, t3 = after(3, "a"), after(1, "b"), after(2, "c")
      local order, values = {}, {}
      for t in aio.as_completed({ t1, t2, t3 }) do
        order[#order + 1] = t
        values[#values + 1] = t:await()
      end
      assert.same({ t2, t3, t1 }, order)
      assert.same({ "b", "c", "a" }, values)
    end, V)
  end)

  it("wraps functions in tasks and yields those tasks", function()
    H.run(function()
      local got = {}
      for t in aio.as_completed({
        function() aio.sleep(2); return 2 end,
        function() aio.sleep(1); return 1 end,
      }) do
        assert.is_true(aio.isfuture(t))
        got[#got + 1] = t:await()
      end
      assert.same({ 1, 2 }, got)
    end, V)
  end)

  it("yields futures and already finished tasks", function()
    H.run(function()
      local fut = aio.Future()
      local t = after(0, "t")
      aio.sleep(0.01)
      aio.get_running_loop():call_later(0.01, function() fut:set_result("f") end)
      local got = {}
      for x in aio.as_completed({ fut, t }) do got[#got + 1] = x:await() end
      assert.same({ "t", "f" }, got)
    end)
  end)

  it("ends at once for an empty list", function()
    H.run(function()
      local n = 0
      for _ in aio.as_completed({}) do n = n + 1 end
      assert.equal(0, n)
    end)
  end)

  it("raises TimeoutError when the next one is late, and cancels nothing", function()
    H.run(function()
      local t0 = aio.time()
      local fast, slow = after(1, "fast"), after(10, "slow")
      local got = {}
      local ok, err = pcall(function()
        for t in aio.as_completed({ slow, fast }, { timeout = 5 }) do
          got[#got + 1] = t:await()
        end
      end)
      assert.is_false(ok)
      assert.is_true(is_timeout(err))
      assert.same({ "fast" }, got)
      assert.near(5, aio.time() - t0, 1e-6)
      assert.is_false(slow:cancelled())
      assert.equal("slow", slow:await())
      assert.equal(0, aio.current_task():cancelling())
    end, V)
  end)

  it("measures the timeout from the call, not per item", function()
    H.run(function()
      local a, b, c = after(2, "a"), after(4, "b"), after(6, "c")
      local got = {}
      local ok, err = pcall(function()
        for t in aio.as_completed({ a, b, c }, { timeout = 5 }) do
          got[#got + 1] = t:await()
        end
      end)
      assert.is_false(ok)
      assert.is_true(is_timeout(err))
      assert.same({ "a", "b" }, got)
      c:await()
    end, V)
  end)

  it("rejects bad arguments", function()
    H.run(function()
      local ok, err = pcall(aio.as_completed, 1)
      assert.is_false(ok)
      assert.matches("bad argument #1 to 'as_completed'", err, 1, true)
      ok, err = pcall(aio.as_completed, { "x" })
      assert.is_false(ok)
      assert.matches("bad argument #1 to 'as_completed'", err, 1, true)
    end)
  end)
end)

------------------------------------------------------------------ shield
describe("shield", function()
  it("returns every result, nils included", function()
    H.run(function()
      local r = pack(aio.shield(aio.create_task(function()
        aio.sleep(0.01); return nil, 2, nil
      end)))
      assert.same({ nil, 2, nil, n = 3 }, r)
    end)
  end)

  it("returns a finished task's results at once", function()
    H.run(function()
      local t = aio.create_task(function() return "a", nil end)
      aio.sleep(0)
      assert.same({ "a", nil, n = 2 }, pack(aio.shield(t)))
    end)
  end)

  it("does not cancel the awaitable when the caller is cancelled", function()
    H.run(function()
      local inner = after(1, "survived")
      local caller = aio.create_task(aio.shield, inner)
      aio.sleep(0.1)
      caller:cancel()
      local ok, err = pcall(caller.await, caller)
      assert.is_false(ok)
      assert.is_true(is_cancelled(err))
      assert.is_false(inner:done())
      assert.equal("survived", inner:await())
      assert.is_false(inner:cancelled())
    end, V)
  end)

  it("shields a function spawned as a task", function()
    H.run(function()
      local finished = false
      local caller = aio.create_task(aio.shield, function()
        aio.sleep(1); finished = true
      end)
      aio.sleep(0.1)
      caller:cancel()
      local err = H.errof(caller.await, caller)
      assert.is_true(is_cancelled(err), tostring(err))
      assert.is_false(finished)
      aio.sleep(2)
      assert.is_true(finished)
    end, V)
  end)

  it("raises the inner error unchanged and CancelledError if the inner is cancelled", function()
    H.run(function()
      local e = {}
      local ok, err = pcall(aio.shield, after(0.01, e, true))
      assert.is_false(ok)
      assert.equal(e, err)
      local inner = after(10, "x")
      aio.get_running_loop():call_later(0.01, function() inner:cancel() end)
      ok, err = pcall(aio.shield, inner)
      assert.is_false(ok)
      assert.is_true(is_cancelled(err))
    end)
  end)

  it("rejects a bad argument", function()
    H.run(function()
      local ok, err = pcall(aio.shield, 3)
      assert.is_false(ok)
      assert.matches("bad argument #1 to 'shield'", err, 1, true)
    end)
  end)
end)
