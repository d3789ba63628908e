-- spec/tasks_spec.lua: tasks -- ordering, results, errors, cancellation,
-- names and introspection, never-retrieved errors (asyncio 3.13 tasks.py).
local aio = require "luaio"
local H = require "helper"

local function is_cancelled(err) return aio.is(err, aio.CancelledError) end

-- Cancels t and waits for it to finish; returns pcall-style results.
local function cancel_and_wait(t)
  t:cancel()
  return pcall(t.await, t)
end

describe("task ordering", function()
  it("creates tasks lazily and starts them in creation order on the next pass", function()
    H.run(function()
      local log = {}
      for i = 1, 3 do
        aio.create_task(function() log[#log + 1] = i end)
      end
      assert.same({}, log)             -- nothing ran inside create_task
      aio.sleep(0)
      assert.same({ 1, 2, 3 }, log)
    end)
  end)

  it("runs ready tasks FIFO, round-robin through sleep(0)", function()
    H.run(function()
      local log = {}
      local function worker(name)
        for i = 1, 3 do
          log[#log + 1] = name .. i
          aio.sleep(0)
        end
      end
      local a = aio.create_task(worker, "a")
      local b = aio.create_task(worker, "b")
      local c = aio.create_task(worker, "c")
      a:await(); b:await(); c:await()
      assert.same({ "a1", "b1", "c1", "a2", "b2", "c2", "a3", "b3", "c3" }, log)
    end)
  end)

  it("yields exactly once in sleep(0)", function()
    H.run(function()
      local n = 0
      local ticker = aio.create_task(function()
        while true do n = n + 1; aio.sleep(0) end
      end)
      aio.sleep(0)
      assert.equal(1, n)
      for _ = 1, 5 do
        local before = n
        aio.sleep(0)
        assert.equal(before + 1, n)
      end
      local ok, err = cancel_and_wait(ticker)
      assert.is_false(ok)
      assert.is_true(is_cancelled(err))
    end)
  end)

  it("runs call_soon callbacks FIFO with tasks", function()
    H.run(function()
      local log = {}
      local loop = aio.get_running_loop()
      local t1 = aio.create_task(function() log[#log + 1] = "t1" end)
      loop:call_soon(function() log[#log + 1] = "c1" end)
      local t2 = aio.create_task(function() log[#log + 1] = "t2" end)
      loop:call_soon(function() log[#log + 1] = "c2" end)
      aio.sleep(0)
      assert.same({ "t1", "c1", "t2", "c2" }, log)
      t1:await(); t2:await()
    end)
  end)

  it("runs what becomes ready during a pass after what was already ready", function()
    H.run(function()
      local log = {}
      local loop = aio.get_running_loop()
      loop:call_soon(function()
        log[#log + 1] = "a"
        loop:call_soon(function() log[#log + 1] = "a2" end)
      end)
      loop:call_soon(function() log[#log + 1] = "b" end)
      aio.sleep(0)   -- a, b, then main; a2 after main
      assert.same({ "a", "b" }, log)
      aio.sleep(0)
      assert.same({ "a", "b", "a2" }, log)
    end)
  end)

  it("wakes a waiter by scheduling it, not by resuming it inside set_result", function()
    H.run(function()
      local f = aio.Future()
      local log = {}
      local t = aio.create_task(function()
        local v = f:await()
        log[#log + 1] = "woke " .. v
      end)
      aio.sleep(0)
      f:set_result("x")
      log[#log + 1] = "after set_result"
      t:await()
      assert.same({ "after set_result", "woke x" }, log)
    end)
  end)
end)

describe("task results", function()
  it("passes create_task's extra arguments unchanged, nils and tables included", function()
    H.run(function()
      local tbl = {}
      local t = aio.create_task(function(...)
        return select("#", ...), ...
      end, 1, nil, tbl, nil)
      local n, a, b, c, d = t:await()
      assert.equal(4, n)
      assert.equal(1, a)
      assert.is_nil(b)
      assert.is_true(rawequal(tbl, c))
      assert.is_nil(d)
    end)
  end)

  it("returns all results across await, nils included", function()
    H.run(function()
      local t = aio.create_task(function() return 1, nil, 3 end)
      local function pack(...) return select("#", ...), { ... } end
      local n, r = pack(t:await())
      assert.equal(3, n)
      assert.same({ 1, nil, 3 }, r)
      n, r = pack(aio.await(t))      -- awaiting a done task again
      assert.equal(3, n)
      assert.same({ 1, nil, 3 }, r)
      n, r = pack(t:result())
      assert.equal(3, n)
      assert.same({ 1, nil, 3 }, r)
    end)
  end)

  it("returns no values for a task that returns nothing", function()
    H.run(function()
      local t = aio.create_task(function() end)
      assert.equal(0, select("#", t:await()))
      assert.equal(0, select("#", t:result()))
    end)
  end)

  it("lets several tasks await the same task and all get its results", function()
    H.run(function()
      local f = aio.Future()
      local worker = aio.create_task(function() return f:await() * 2 end)
      local waiters = {}
      for i = 1, 3 do
        waiters[i] = aio.create_task(function() return worker:await() + i end)
      end
      aio.sleep(0)
      f:set_result(10)
      for i = 1, 3 do assert.equal(20 + i, waiters[i]:await()) end
    end)
  end)

  it("aio.async(fn) returns a function that starts fn as a task", function()
    H.run(function()
      local double = aio.async(function(x) aio.sleep(0); return x * 2 end)
      local t = double(21)
      assert.is_false(t:done())
      assert.equal(42, t:await())
    end)
  end)

  it("keeps a string error unchanged across await", function()
    H.run(function()
      local t = aio.create_task(function() error("plain string", 0) end)
      local ok, err = pcall(t.await, t)
      assert.is_false(ok)
      assert.equal("plain string", err)
      assert.equal("plain string", t:exception())
    end)
  end)

  it("keeps a positioned string error exactly as raised", function()
    H.run(function()
      local raised
      local t = aio.create_task(function()
        local _, e = pcall(error, "boom", 1)
        raised = e
        error(e, 0)
      end)
      local ok, err = pcall(t.await, t)
      assert.is_false(ok)
      assert.equal(raised, err)
    end)
  end)

  it("keeps a table error rawequal across await and result()", function()
    H.run(function()
      local e = { code = 7 }
      local t = aio.create_task(function() aio.sleep(0); error(e) end)
      local ok, err = pcall(t.await, t)
      assert.is_false(ok)
      assert.is_true(rawequal(e, err))
      ok, err = pcall(t.result, t)
      assert.is_false(ok)
      assert.is_true(rawequal(e, err))
      assert.is_true(rawequal(e, t:exception()))
    end)
  end)

  it("keeps non-string, non-table error values (false, numbers)", function()
    H.run(function()
      local t1 = aio.create_task(function() error(42) end)
      local ok, err = pcall(t1.await, t1)
      assert.is_false(ok)
      assert.equal(42, err)
      local t2 = aio.create_task(function() error(false) end)
      ok, err = pcall(t2.await, t2)
      assert.is_false(ok)
      assert.equal(false, err)
      assert.is_true(t2:done())
      assert.is_false(t2:cancelled())
    end)
  end)

  it("raises InvalidStateError from result() and exception() of a pending task", function()
    H.run(function()
      local t = aio.create_task(function() aio.sleep(0) end)
      local ok, err = pcall(t.result, t)
      assert.is_false(ok)
      assert.is_true(aio.is(err, aio.InvalidStateError))
      ok, err = pcall(t.exception, t)
      assert.is_false(ok)
      assert.is_true(aio.is(err, aio.InvalidStateError))
      t:await()
      assert.is_nil(t:exception())
    end)
  end)

  it("refuses set_result / set_exception on a task", function()
    H.run(function()
      local t = aio.create_task(function() end)
      if t.set_result then
        assert.matches("set_result: a Task's result is set by its function",
          H.errof(t.set_result, t, 1), 1, true)
      end
      if t.set_exception then
        assert.matches("set_exception: a Task's error is set by its function",
          H.errof(t.set_exception, t, "x"), 1, true)
      end
      t:await()
    end)
  end)
end)

describe("cancellation", function()
  it("cancelling before the task starts means its body never runs", function()
    H.run(function()
      local ran = false
      local t = aio.create_task(function() ran = true end)
      assert.is_true(t:cancel())
      assert.is_false(t:done())       -- cancellation is delivered by the loop
      local ok, err = pcall(t.await, t)
      assert.is_false(ok)
      assert.is_true(is_cancelled(err))
      assert.is_false(ran)
      assert.is_true(t:done())
      assert.is_true(t:cancelled())
    end)
  end)

  it("cancelling a task that awaits a future cancels the future too", function()
    H.run(function()
      local f = aio.Future()
      local t = aio.create_task(function() return f:await() end)
      aio.sleep(0)
      assert.is_true(t:cancel())
      local ok, err = pcall(t.await, t)
      assert.is_false(ok)
      assert.is_true(is_cancelled(err))
      assert.is_true(t:cancelled())
      assert.is_true(f:cancelled())
    end)
  end)

  it("cancelling a task that awaits another task cancels that task", function()
    H.run(function()
      local inner = aio.create_task(function() aio.sleep(math.huge) end)
      local outer = aio.create_task(function() return inner:await() end)
      aio.sleep(0)
      assert.is_true(outer:cancel())
      local ok, err = pcall(outer.await, outer)
      assert.is_false(ok)
      assert.is_true(is_cancelled(err))
      assert.is_true(inner:cancelled())
      assert.is_true(outer:cancelled())
    end)
  end)

  it("an awaiter gets the value of an awaited task that swallowed the cancellation", function()
    H.run(function()
      local inner = aio.create_task(function()
        local ok, err = pcall(aio.sleep, math.huge)
        assert(not ok and is_cancelled(err))
        return "inner value"
      end)
      local outer = aio.create_task(function()
        local v = inner:await()
        return "outer got " .. v
      end)
      aio.sleep(0)
      outer:cancel()
      assert.equal("outer got inner value", outer:await())
      assert.is_false(outer:cancelled())
      assert.equal(1, outer:cancelling())
      assert.is_false(inner:cancelled())
      assert.equal(1, inner:cancelling())
    end)
  end)

  it("cancels a sleeping task and removes its timer", function()
    H.run(function()
      local t = aio.create_task(function() aio.sleep(3600) end)
      aio.sleep(0)
      assert.equal(1, aio.get_running_loop():stats().timers)
      local ok, err = cancel_and_wait(t)
      assert.is_false(ok)
      assert.is_true(is_cancelled(err))
      assert.equal(0, aio.get_running_loop():stats().timers)
    end)
  end)

  it("delivers the cancel message as err.message, inside and to the awaiter", function()
    H.run(function()
      local inside
      local t = aio.create_task(function()
        local _, err = pcall(aio.sleep, 10)
        inside = err
        error(err, 0)
      end)
      aio.sleep(0)
      t:cancel("go away")
      local ok, err = pcall(t.await, t)
      assert.is_false(ok)
      assert.is_true(is_cancelled(inside))
      assert.equal("go away", inside.message)
      assert.is_true(is_cancelled(err))
      assert.equal("go away", err.message)
      assert.is_true(t:cancelled())
    end)
  end)

  it("delivers the message of a cancel made before the task started", function()
    H.run(function()
      local t = aio.create_task(function() end)
      t:cancel("early")
      local ok, err = pcall(t.await, t)
      assert.is_false(ok)
      assert.is_true(is_cancelled(err))
      assert.equal("early", err.message)
    end)
  end)

  it("a task that swallows its cancellation and returns is done, not cancelled", function()
    H.run(function()
      local t = aio.create_task(function()
        local ok, err = pcall(aio.sleep, 10)
        assert(not ok and is_cancelled(err))
        return "recovered"
      end)
      aio.sleep(0)
      assert.is_true(t:cancel())
      assert.equal("recovered", t:await())
      assert.is_true(t:done())
      assert.is_false(t:cancelled())
      assert.equal(1, t:cancelling())
    end)
  end)

  it("counts cancel requests; uncancel() decrements and returns the count", function()
    H.run(function()
      local t = aio.create_task(function()
        pcall(aio.sleep, 10)
        return "done"
      end)
      aio.sleep(0)
      assert.equal(0, t:cancelling())
      assert.is_true(t:cancel())
      assert.is_true(t:cancel())
      assert.equal(2, t:cancelling())
      assert.equal(1, t:uncancel())
      assert.equal(1, t:cancelling())
      assert.equal(0, t:uncancel())
      assert.equal(0, t:cancelling())
      assert.equal(0, t:uncancel())   -- never below zero
      assert.equal("done", t:await())
    end)
  end)

  it("uncancel() back to zero withdraws a cancellation not yet delivered", function()
    H.run(function()
      local t = aio.create_task(function()
        local me = aio.current_task()
        me:cancel()
        assert(me:cancelling() == 1)
        me:uncancel()
        aio.sleep(0)                  -- asyncio 3.13: no CancelledError here
        return "survived"
      end)
      assert.equal("survived", t:await())
    end)
  end)

  it("cancel() returns false for a finished, failed or cancelled task", function()
    H.run(function()
      local ok_t = aio.create_task(function() return 1 end)
      local bad_t = aio.create_task(function() error("x", 0) end)
      local c_t = aio.create_task(function() aio.sleep(10) end)
      ok_t:await()
      pcall(bad_t.await, bad_t)
      aio.sleep(0)
      c_t:cancel()
      pcall(c_t.await, c_t)
      assert.is_false(ok_t:cancel())
      assert.is_false(bad_t:cancel())
      assert.is_false(c_t:cancel())
      assert.equal(0, ok_t:cancelling())
      assert.equal(0, bad_t:cancelling())
      assert.equal(1, c_t:cancelling())
      assert.is_false(ok_t:cancelled())
      assert.equal(1, ok_t:result())
    end)
  end)

  it("is edge-triggered: after catching CancelledError the task may still suspend", function()
    H.run(function()
      local steps = {}
      local t = aio.create_task(function()
        local _, err = pcall(aio.sleep, 10)
        steps[#steps + 1] = is_cancelled(err) and "caught" or "?"
        aio.sleep(0)
        steps[#steps + 1] = "slept 0"
        aio.sleep(0.001)
        steps[#steps + 1] = "slept"
        local f = aio.Future()
        aio.get_running_loop():call_soon(f.set_result, f, "cleanup")
        return f:await()
      end)
      aio.sleep(0)
      t:cancel()
      assert.equal("cleanup", t:await())
      assert.same({ "caught", "slept 0", "slept" }, steps)
    end)
  end)

  it("a second cancel() after the first was caught delivers a second CancelledError", function()
    H.run(function()
      local caught = 0
      local t = aio.create_task(function()
        for _ = 1, 2 do
          local _, err = pcall(aio.sleep, 10)
          if is_cancelled(err) then caught = caught + 1 end
        end
        return caught
      end)
      aio.sleep(0)
      t:cancel()
      aio.sleep(0); aio.sleep(0)
      t:cancel()
      assert.equal(2, t:await())
      assert.equal(2, t:cancelling())
    end)
  end)

  it("a task raising another error while being cancelled fails with that error", function()
    H.run(function()
      local t = aio.create_task(function()
        pcall(aio.sleep, 10)
        error("cleanup failed", 0)
      end)
      aio.sleep(0)
      t:cancel()
      local ok, err = pcall(t.await, t)
      assert.is_false(ok)
      assert.equal("cleanup failed", err)
      assert.is_false(t:cancelled())
    end)
  end)

  it("exception() and result() of a cancelled task raise CancelledError", function()
    H.run(function()
      local t = aio.create_task(function() aio.sleep(10) end)
      aio.sleep(0)
      t:cancel("why")
      pcall(t.await, t)
      local ok, err = pcall(t.exception, t)
      assert.is_false(ok)
      assert.is_true(is_cancelled(err))
      ok, err = pcall(t.result, t)
      assert.is_false(ok)
      assert.is_true(is_cancelled(err))
      assert.equal("why", err.message)
    end)
  end)

  it("a task cancelled while awaiting a cancelled task sees CancelledError but is not being cancelled itself", function()
    H.run(function()
      local inner = aio.create_task(function() aio.sleep(10) end)
      local outer = aio.create_task(function()
        local ok, err = pcall(inner.await, inner)
        return ok, err, aio.current_task():cancelling()
      end)
      aio.sleep(0)
      inner:cancel()
      local ok, err, n = outer:await()
      assert.is_false(ok)
      assert.is_true(is_cancelled(err))
      assert.equal(0, n)
      assert.is_false(outer:cancelled())
    end)
  end)
end)

describe("task misuse", function()
  it("refuses to let a task await itself", function()
    H.run(function()
      local t = aio.create_task(function()
        local me = aio.current_task()
        local ok, err = pcall(me.await, me)
        return ok, err
      end)
      local ok, err = t:await()
      assert.is_false(ok)
      assert.is_string(err)
      assert.matches("a task cannot await itself", err, 1, true)
      local ok2, err2 = pcall(aio.await, t)   -- main awaiting a done task is fine
      assert.is_true(ok2)
      assert.is_false(err2)
    end)
  end)

  it("reports a bad create_task argument in lauxlib form naming create_task", function()
    H.run(function()
      local ok, err = pcall(aio.create_task, 42)
      assert.is_false(ok)
      assert.equal("bad argument #1 to 'create_task' (function expected, got number)", err)
      ok, err = pcall(aio.create_task)
      assert.is_false(ok)
      assert.equal("bad argument #1 to 'create_task' (function expected, got no value)", err)
    end)
  end)

  it("reports a bad aio.await argument in lauxlib form", function()
    H.run(function()
      local ok, err = pcall(aio.await, 42)
      assert.is_false(ok)
      assert.matches("bad argument #1 to 'await'", err, 1, true)
      ok, err = pcall(aio.await, {})
      assert.is_false(ok)
      assert.matches("bad argument #1 to 'await'", err, 1, true)
    end)
  end)

  it("reports a bad aio.async argument", function()
    local ok, err = pcall(aio.async, "nope")
    assert.is_false(ok)
    assert.matches("bad argument #1 to 'async' (function expected, got string)", err, 1, true)
  end)

  it("awaiting from a callback raises the outside-a-task error", function()
    H.run(function()
      local f = aio.Future()
      local t = aio.create_task(function() aio.sleep(0); aio.sleep(0); return 1 end)
      local res = {}
      aio.get_running_loop():call_soon(function()
        res.f = { pcall(f.await, f) }
        res.t = { pcall(t.await, t) }
        res.current = aio.current_task()
      end)
      aio.sleep(0)
      t:await()
      assert.is_false(res.f[1])
      assert.matches("needs a running task", res.f[2], 1, true)
      assert.is_false(res.t[1])
      assert.matches("needs a running task", res.t[2], 1, true)
      assert.is_nil(res.current)
    end)
  end)

  it("creating a task on a closed loop fails with a clear error", function()
    local r = aio.Runner()
    local loop = r:get_loop()
    r:run(function() end)
    r:close()
    local ok, err = pcall(loop.create_task, loop, function() end)
    assert.is_false(ok)
    assert.is_string(err)
    assert.matches("closed", err, 1, true)
  end)
end)

describe("task introspection", function()
  it("names tasks Task-N by default and supports set_name", function()
    H.run(function()
      local t1 = aio.create_task(function() end)
      local t2 = aio.create_task(function() end)
      local n1 = tonumber(t1:get_name():match("^Task%-(%d+)$"))
      local n2 = tonumber(t2:get_name():match("^Task%-(%d+)$"))
      assert.is_number(n1)
      assert.equal(n1 + 1, n2)
      t2:set_name("worker")
      assert.equal("worker", t2:get_name())
      assert.matches("worker", tostring(t2), 1, true)
      t1:await(); t2:await()
    end)
  end)

  it("current_task() is the running task; all_tasks() lists pending tasks only", function()
    H.run(function()
      local main = aio.current_task()
      assert.is_not_nil(main)
      local seen
      local t = aio.create_task(function() seen = aio.current_task(); aio.sleep(0) end)
      local done_t = aio.create_task(function() end)
      aio.sleep(0)
      assert.equal(t, seen)
      local set = {}
      for _, x in ipairs(aio.all_tasks()) do set[x] = true end
      assert.is_true(set[main])
      assert.is_true(set[t])
      assert.is_nil(set[done_t])
      t:await()
      set = {}
      for _, x in ipairs(aio.all_tasks()) do set[x] = true end
      assert.is_nil(set[t])
      assert.equal(aio.current_task(), main)
    end)
  end)

  it("get_stack() shows where a suspended task waits, and nil once it succeeded", function()
    H.run(function()
      local function waits_here() aio.sleep(10) end
      local t = aio.create_task(function() waits_here() end)
      aio.sleep(0)
      local s = t:get_stack()
      assert.is_string(s)
      assert.matches("waits_here", s, 1, true)
      assert.matches("tasks_spec", s, 1, true)
      t:cancel(); pcall(t.await, t)
      local ok_t = aio.create_task(function() end)
      ok_t:await()
      assert.is_nil(ok_t:get_stack())
    end)
  end)

  it("get_stack() of a failed task shows where it failed", function()
    H.run(function()
      local function fails_here() error("bad", 0) end
      local t = aio.create_task(function() fails_here() end)
      pcall(t.await, t)
      local s = t:get_stack()
      assert.is_string(s)
      assert.matches("fails_here", s, 1, true)
    end)
  end)

  it("print_stack(file) writes the stack to the file", function()
    H.run(function()
      local function parked() aio.sleep(10) end
      local t = aio.create_task(function() parked() end)
      aio.sleep(0)
      local buf = {}
      local file = { write = function(self, ...) for _, s in ipairs { ... } do buf[#buf + 1] = s end return self end }
      t:print_stack(file)
      assert.matches("parked", table.concat(buf), 1, true)
      t:cancel(); pcall(t.await, t)
    end)
  end)

  it("get_coro() is the task's thread while pending and nil once done", function()
    H.run(function()
      local thread
      local t = aio.create_task(function() thread = coroutine.running(); aio.sleep(0) end)
      aio.sleep(0)
      assert.equal("thread", type(t:get_coro()))
      assert.equal(thread, t:get_coro())
      t:await()
      assert.is_nil(t:get_coro())
    end)
  end)

  it("runs task done callbacks in registration order, with the task, after completion", function()
    H.run(function()
      local log = {}
      local t = aio.create_task(function() aio.sleep(0); return "v" end)
      t:add_done_callback(function(x) log[#log + 1] = { "a", x, x:done() } end)
      t:add_done_callback(function(x) log[#log + 1] = { "b", x:result() } end)
      t:await()
      aio.sleep(0)
      assert.equal(2, #log)
      assert.equal("a", log[1][1])
      assert.equal(t, log[1][2])
      assert.is_true(log[1][3])
      assert.same({ "b", "v" }, log[2])
    end)
  end)

  it("runs a done callback of a cancelled task", function()
    H.run(function()
      local got
      local t = aio.create_task(function() aio.sleep(10) end)
      t:add_done_callback(function(x) got = x:cancelled() end)
      aio.sleep(0)
      t:cancel(); pcall(t.await, t)
      aio.sleep(0)
      assert.is_true(got)
    end)
  end)

  it("remove_done_callback on a task returns how many were removed", function()
    H.run(function()
      local calls = 0
      local function cb() calls = calls + 1 end
      local t = aio.create_task(function() aio.sleep(0) end)
      t:add_done_callback(cb)
      t:add_done_callback(cb)
      assert.equal(2, t:remove_done_callback(cb))
      assert.equal(0, t:remove_done_callback(cb))
      t:await()
      aio.sleep(0)
      assert.equal(0, calls)
    end)
  end)
end)

describe("a task error never retrieved", function()
  it("is reported through the exception handler when the loop closes", function()
    local t
    local reports = H.reports(function()
      t = aio.create_task(function() error("lost error", 0) end)
      aio.sleep(0); aio.sleep(0)
    end)
    assert.equal(1, #reports)
    local ctx = reports[1]
    assert.equal("Task exception was never retrieved", ctx.message)
    assert.equal("lost error", ctx.exception)
    assert.equal(t, ctx.task)
  end)

  it("reports a table error as the raw value", function()
    local e = setmetatable({}, { __tostring = function() return "custom" end })
    local reports = H.reports(function()
      aio.create_task(function() error(e) end)
      aio.sleep(0); aio.sleep(0)
    end)
    assert.equal(1, #reports)
    assert.is_true(rawequal(e, reports[1].exception))
  end)

  it("is not reported once the task was awaited", function()
    local reports = H.reports(function()
      local t = aio.create_task(function() error("seen", 0) end)
      pcall(t.await, t)
    end)
    assert.same({}, reports)
  end)

  it("is reported while the loop runs when the task is collected", function()
    H.run(function()
      local got = {}
      aio.get_running_loop():set_exception_handler(function(_, ctx) got[#got + 1] = ctx end)
      do
        local t = aio.create_task(function() error("dropped", 0) end)
        aio.sleep(0); aio.sleep(0)
        assert.is_true(t:done())
      end
      aio.create_task(function() return "fine" end)   -- collected too
      aio.sleep(0); aio.sleep(0)
      for _ = 1, 3 do collectgarbage() end
      aio.sleep(0); aio.sleep(0)
      assert.equal(1, #got)
      assert.equal("Task exception was never retrieved", got[1].message)
      assert.equal("dropped", got[1].exception)
      assert.is_string(got[1].traceback)
    end)
  end)

  it("is not reported when a collected task's error was retrieved", function()
    local reports = H.reports(function()
      do
        local t = aio.create_task(function() error("seen", 0) end)
        aio.sleep(0); aio.sleep(0)
        assert.equal("seen", t:exception())
      end
      for _ = 1, 3 do collectgarbage() end
      aio.sleep(0); aio.sleep(0)
    end)
    assert.same({}, reports)
  end)

  it("is not reported once exception() was called", function()
    local reports = H.reports(function()
      local t = aio.create_task(function() error("seen", 0) end)
      aio.sleep(0); aio.sleep(0)
      assert.equal("seen", t:exception())
    end)
    assert.same({}, reports)
  end)

  it("is not reported once result() raised it", function()
    local reports = H.reports(function()
      local t = aio.create_task(function() error("seen", 0) end)
      aio.sleep(0); aio.sleep(0)
      assert.equal("seen", H.errof(t.result, t))
    end)
    assert.same({}, reports)
  end)

  it("is not reported for a cancelled task", function()
    local reports = H.reports(function()
      local t = aio.create_task(function() aio.sleep(10) end)
      aio.sleep(0)
      t:cancel()
      aio.sleep(0); aio.sleep(0)
      assert.is_true(t:cancelled())
    end)
    assert.same({}, reports)
  end)

  it("a task left pending at loop close is cancelled, not reported as an error", function()
    local t
    local reports = H.reports(function()
      t = aio.create_task(function() aio.sleep(3600) end)
      aio.sleep(0)
    end)
    assert.is_true(t:cancelled())
    assert.same({}, reports)
  end)
end)

describe("coroutines of finished tasks", function()
  it("are reused, and a task on a reused one starts clean", function()
    H.run(function()
      local loop = aio.get_running_loop()
      local threads = {}
      local ts = {}
      for i = 1, 50 do
        ts[i] = aio.create_task(function()
          threads[coroutine.running()] = true
          local _ <close> = setmetatable({}, { __close = function() end })
          aio.sleep(0)
          return i
        end)
      end
      for i = 1, 50 do assert.equal(i, ts[i]:await()) end
      assert.is_true(loop:stats().pooled >= 50)
      -- the next tasks run on those coroutines, with nothing left over
      local reused = 0
      for i = 1, 50 do
        local t = aio.create_task(function(...)
          if threads[coroutine.running()] then reused = reused + 1 end
          assert.equal(2, select("#", ...))
          return select(2, ...)
        end, "a", i)
        assert.equal(i, t:await())
      end
      assert.equal(50, reused)
    end)
  end)

  it("are not reused after a yield that was not luaio's reached the scheduler", function()
    -- lua_yield from C (not through luaio's coroutine functions) reaches
    -- the scheduler: the task fails and its coroutine is closed
    local rawyield = H.require_cmodule("rawyield", [[
#include <lua.h>
static int rawyield (lua_State *L) { return lua_yield(L, 0); }
int luaopen_rawyield (lua_State *L) {
  lua_pushcfunction(L, rawyield);
  return 1;
}
]])
    H.run(function()
      local loop = aio.get_running_loop()
      for _ = 1, 3 do aio.create_task(function() aio.sleep(0) end):await() end
      local pooled = loop:stats().pooled
      assert.is_true(pooled >= 1)
      local bad = aio.create_task(function() rawyield() end)
      local ok, err = pcall(bad.await, bad)
      assert.is_false(ok)
      assert.matches("cannot yield from a task body", tostring(err), 1, true)
      assert.equal(pooled - 1, loop:stats().pooled)
      for i = 1, 20 do
        assert.equal(i, aio.create_task(function() aio.sleep(0); return i end):await())
      end
      -- an error inside the body leaves the coroutine reusable
      local before = loop:stats().pooled
      assert.is_true(before >= 1)
      for i = 1, 5 do
        local t = aio.create_task(function() error("e" .. i, 0) end)
        local ok2, err2 = pcall(t.await, t)
        assert.is_false(ok2)
        assert.equal("e" .. i, err2)
      end
      assert.equal(before, loop:stats().pooled)
    end)
  end)
end)
