-- spec/fidelity_spec.lua: asyncio fidelity (issue 23) -- the cases of
-- CPython's test_asyncio suites (locks, queues, tasks' cancellation,
-- gather, wait, shield, task groups, timeouts) around three bugs, ported
-- to Lua:
--   1. a wake-up (notification, lock, permit, item, slot) that reached a
--      waiter which then leaves with an error is handed on, never lost;
--      each case cancels exactly between the wake-up and the resume;
--   2. a task that cancels itself and returns without suspending ends
--      cancelled (a cancel request still pending at the end wins);
--   3. a cancel message reaches the cancelled task through every
--      combinator;
-- and the misuse errors of TaskGroup and timeout objects.
local aio = require "luaio"
local H = require "helper"

local run = H.guarded
local spin = H.spin
local settle = H.settle

local function spawn(f, ...) return aio.create_task(f, ...) end
local function is_cancelled(err) return aio.is(err, aio.CancelledError) end

-- The error awaiting t raises (fails if it returns).
local function await_err(t)
  local ok, err = pcall(t.await, t)
  assert(not ok, "expected the task to fail")
  return err
end

------------------------------------------------------------------ 1. hand-on
describe("a woken waiter that leaves with an error hands its wake-up on", function()
  -- Two consumers in wait_for(state ~= 0); one item is produced and
  -- notify(1) reaches the first, which is then cancelled somewhere on
  -- its way back (re-taking the lock).  The second must consume it.
  local function two_consumers(cond, st)
    local cs = {}
    for i = 1, 2 do
      cs[i] = spawn(function()
        local _ <close> = cond:acquire()
        while true do
          cond:wait_for(function() return st.state ~= 0 end)
          if st.state < 0 then return end
          st.state = st.state - 1
          st.took[#st.took + 1] = i
        end
      end)
    end
    return cs
  end

  local function finish(cond, st, cs)
    cond:acquire()
    st.state = -1
    cond:notify_all()
    cond:release()
    settle(cs)
    assert.is_false(cond:locked())
  end

  it("Condition: cancelled while it waits for the lock (relock)", function()
    run(function()
      local cond, st = aio.Condition(), { state = 0, took = {} }
      local cs = two_consumers(cond, st)
      spin()
      cond:acquire()
      st.state = 1
      cond:notify(1)
      aio.sleep(0)          -- consumer 1 wakes and queues for the lock
      cs[1]:cancel()        -- cancelled in the lock's queue
      cond:release()
      spin(10)
      assert.equal(0, st.state)            -- consumer 2 took it
      assert.same({ 2 }, st.took)
      assert.is_true(cs[1]:cancelled())
      finish(cond, st, cs)
    end)
  end)

  it("Condition: cancelled after the lock was handed to it, before it ran", function()
    run(function()
      local cond, st = aio.Condition(), { state = 0, took = {} }
      local cs = two_consumers(cond, st)
      spin()
      cond:acquire()
      st.state = 1
      cond:notify(1)
      aio.sleep(0)          -- consumer 1 queues for the lock
      cond:release()        -- the lock wakes it ...
      cs[1]:cancel()        -- ... and it is cancelled before it runs
      spin(10)
      assert.equal(0, st.state)
      assert.same({ 2 }, st.took)
      assert.is_true(cs[1]:cancelled())
      finish(cond, st, cs)
    end)
  end)

  it("Condition: cancelled after notify() reached it, before it ran", function()
    run(function()
      local cond, st = aio.Condition(), { state = 0, took = {} }
      local cs = two_consumers(cond, st)
      spin()
      cond:acquire()
      st.state = 1
      cond:notify(1)
      cs[1]:cancel()        -- still on its way out of the wait list
      cond:release()
      spin(10)
      assert.equal(0, st.state)
      assert.same({ 2 }, st.took)
      finish(cond, st, cs)
    end)
  end)

  it("Condition: the CancelledError keeps its message on each path", function()
    run(function()
      for _, relock in ipairs { false, true } do
        local cond = aio.Condition()
        local raised
        local t = spawn(function()
          local _ <close> = cond:acquire()
          local ok, err = pcall(cond.wait_for, cond, function() return false end)
          assert(not ok and cond:locked())
          raised = err
          error(err, 0)
        end)
        spin()
        if relock then
          cond:acquire()
          cond:notify()
          aio.sleep(0)        -- t waits for the lock
          t:cancel("foo")
          cond:release()
        else
          t:cancel("foo")     -- t waits on the condition
        end
        local err = await_err(t)
        assert.is_true(is_cancelled(err))
        assert.equal("foo", err.message)
        assert.equal(raised, err)
      end
    end)
  end)

  it("Lock: a waiter cancelled after release() woke it passes the lock on", function()
    run(function()
      local lock = aio.Lock()
      lock:acquire()
      local got = {}
      local ts = {}
      for i = 1, 3 do
        ts[i] = spawn(function()
          local _ <close> = lock:acquire()
          got[#got + 1] = i
        end)
      end
      spin()
      lock:release()
      ts[1]:cancel()
      spin(10)
      assert.same({ 2, 3 }, got)
      assert.is_true(ts[1]:cancelled())
      assert.is_false(lock:locked())
    end)
  end)

  it("Lock: the race of test_cancel_race (the holder releases as B is cancelled)", function()
    run(function()
      local lock = aio.Lock()
      local fa = aio.Future()
      local function lockit(blocker)
        local _ <close> = lock:acquire()
        if blocker then blocker:await() end
      end
      local ta = spawn(lockit, fa)
      spin(1)
      assert.is_true(lock:locked())
      local tb = spawn(lockit)
      spin(1)
      local tc = spawn(lockit)
      spin(1)
      fa:set_result(nil)
      tb:cancel()
      spin(5)
      assert.is_false(lock:locked())
      assert.is_true(ta:done())
      assert.is_true(tb:cancelled())
      assert.is_true(tc:done() and not tc:cancelled())
    end)
  end)

  for _, kind in ipairs { "Semaphore", "BoundedSemaphore" } do
    it(kind .. ": a waiter cancelled after release() woke it gives the permit on", function()
      run(function()
        local sem = aio[kind](1)
        sem:acquire()
        local got = {}
        local ts = {}
        for i = 1, 3 do
          ts[i] = spawn(function()
            sem:acquire()
            got[#got + 1] = i
          end)
        end
        spin()
        sem:release()
        ts[1]:cancel()
        spin(10)
        assert.same({ 2 }, got)          -- one permit: one of them, not lost
        assert.is_true(ts[1]:cancelled())
        sem:release()
        spin(10)
        assert.same({ 2, 3 }, got)       -- (they keep their permits)
        assert.is_true(sem:locked())
      end)
    end)
  end

  it("Semaphore: test_acquire_cancel_before_awoken (two woken, one cancelled)", function()
    run(function()
      local sem = aio.Semaphore(0)
      local ts = {}
      for i = 1, 4 do ts[i] = spawn(sem.acquire, sem) end
      spin()
      sem:release()
      sem:release()            -- t1 and t2 woken
      ts[1]:cancel()           -- before they ran
      spin(5)
      assert.is_true(ts[1]:cancelled())
      assert.is_true(ts[2]:done() and not ts[2]:cancelled())
      assert.is_true(ts[3]:done() and not ts[3]:cancelled())
      assert.is_false(ts[4]:done())
      ts[4]:cancel()
      settle(ts)
      assert.is_true(sem:locked())
    end)
  end)

  it("Event: a waiter cancelled after set() woke it raises, the others are woken", function()
    run(function()
      local ev = aio.Event()
      local woke = {}
      local ts = {}
      for i = 1, 3 do
        ts[i] = spawn(function()
          ev:wait()
          woke[#woke + 1] = i
        end)
      end
      spin()
      ev:set()
      ts[1]:cancel("late")
      spin(5)
      local err = await_err(ts[1])
      assert.is_true(is_cancelled(err))
      assert.equal("late", err.message)
      assert.same({ 2, 3 }, woke)
    end)
  end)

  it("Barrier: a party cancelled after the barrier filled leaves it usable", function()
    run(function()
      local b = aio.Barrier(3)
      local idx = {}
      local ts = {}
      for i = 1, 3 do
        ts[i] = spawn(function() idx[i] = b:wait() end)
        spin(1)
      end
      -- the last arrival released the others: the first is woken (its
      -- condition wait) and cancelled before it runs
      ts[1]:cancel()
      spin(10)
      assert.is_true(ts[1]:cancelled())
      assert.is_nil(idx[1])
      assert.is_not_nil(idx[2])
      assert.is_not_nil(idx[3])
      assert.equal(0, b.n_waiting)
      assert.is_false(b.broken)
      -- usable again: a new round passes
      local r = {}
      for i = 1, 3 do r[i] = spawn(b.wait, b) end
      settle(r)
      for i = 1, 3 do assert.is_true(r[i]:done() and not r[i]:cancelled()) end
    end)
  end)

  it("Barrier: a party cancelled while re-taking the lock does not block the next round", function()
    run(function()
      local b = aio.Barrier(2)
      local t1 = spawn(b.wait, b)
      spin()
      -- hold the barrier's lock: the released party must queue for it
      local cond = b._cond
      local t2 = spawn(b.wait, b)
      spin(1)
      assert.is_true(t2:done())
      cond:acquire()
      spin(1)                 -- t1 woken, waits for the lock
      t1:cancel()
      cond:release()
      spin(10)
      assert.is_true(t1:cancelled())
      assert.equal(0, b.n_waiting)
      local r = { spawn(b.wait, b), spawn(b.wait, b) }
      settle(r)
      assert.is_true(r[1]:done() and not r[1]:cancelled())
      assert.is_true(r[2]:done() and not r[2]:cancelled())
    end)
  end)

  it("Queue: a getter cancelled after put() woke it passes the item on", function()
    run(function()
      local q = aio.Queue()
      local got = {}
      local ts = {}
      for i = 1, 2 do
        ts[i] = spawn(function() got[i] = q:get() end)
      end
      spin()
      q:put_nowait("x")
      ts[1]:cancel()
      spin(5)
      assert.is_true(ts[1]:cancelled())
      assert.equal("x", got[2])
      assert.equal(0, q:qsize())
    end)
  end)

  it("Queue: a putter cancelled after get() woke it passes the slot on", function()
    run(function()
      local q = aio.Queue(1)
      q:put_nowait("a")
      local ts = {}
      for i = 1, 2 do
        ts[i] = spawn(function() q:put("p" .. i) end)
      end
      spin()
      assert.equal("a", q:get_nowait())
      ts[1]:cancel()
      spin(5)
      assert.is_true(ts[1]:cancelled())
      assert.is_true(ts[2]:done() and not ts[2]:cancelled())
      assert.equal("p2", q:get_nowait())
    end)
  end)

  it("Queue: test_cancelled_getters_not_being_held_in_self._getters", function()
    run(function()
      local q = aio.Queue()
      local ok, err = pcall(aio.wait_for, function() return q:get() end, 0.01)
      assert.is_false(ok)
      assert.is_true(aio.is(err, aio.TimeoutError))
      q:put_nowait(1)
      assert.equal(1, q:get_nowait())   -- no ghost getter took it
    end)
  end)

  it("Queue: test_get_cancelled_race (a woken getter cancelled, the next one serves)", function()
    run(function()
      local q = aio.Queue()
      local t1 = spawn(q.get, q)
      local t2 = spawn(q.get, q)
      spin(1)
      t1:cancel()
      spin(1)
      assert.is_true(t1:done())
      q:put_nowait("a")
      spin(1)
      assert.equal("a", t2:result())
    end)
  end)

  it("Queue: test_cancelled_put_silence_value_error_exception", function()
    run(function()
      local q = aio.Queue(1)
      q:put_nowait(1)
      local t = spawn(q.put, q, 2)
      spin(1)
      t:cancel()
      settle({ t })
      assert.is_true(t:cancelled())
      assert.equal(1, q:get_nowait())
      assert.is_true(q:empty())
    end)
  end)
end)

------------------------------------------------------------------ 2. self-cancel
describe("a task that cancels itself and returns without suspending", function()
  it("ends cancelled, with its message (test_cancel_at_end)", function()
    run(function()
      local t
      t = spawn(function()
        assert.is_true(t:cancel("bye"))
        return 12
      end)
      assert.is_false(t:cancelled())
      local err = await_err(t)
      assert.is_true(is_cancelled(err))
      assert.equal("bye", err.message)
      assert.is_true(t:done())
      assert.is_true(t:cancelled())
      assert.is_false(t:cancel())        -- done: nothing to cancel
      assert.is_true(is_cancelled(H.errof(t.result, t)))
    end)
  end)

  it("ends cancelled when started eagerly too", function()
    run(function()
      aio.get_running_loop():set_task_factory(aio.eager_task_factory)
      local t
      t = aio.create_task(function()
        aio.current_task():cancel()
        return 12
      end)
      aio.get_running_loop():set_task_factory(nil)
      assert.is_true(t:done())
      assert.is_true(t:cancelled())
    end)
  end)

  it("ends normally when the request is withdrawn (uncancel) or caught", function()
    run(function()
      local t1 = spawn(function()
        local me = aio.current_task()
        me:cancel()
        assert.equal(0, me:uncancel())
        return 12
      end)
      assert.equal(12, t1:await())
      local t2 = spawn(function()
        aio.current_task():cancel()
        local ok, err = pcall(aio.sleep, 0)
        assert(not ok and is_cancelled(err))
        return 13
      end)
      assert.equal(13, t2:await())
    end)
  end)

  it("an error raised after the request wins over it", function()
    run(function()
      local t = spawn(function()
        aio.current_task():cancel()
        error("boom", 0)
      end)
      assert.equal("boom", await_err(t))
      assert.is_false(t:cancelled())
    end)
  end)

  it("gather over it raises CancelledError, or lists it with return_exceptions", function()
    run(function()
      local function selfcancel()
        aio.current_task():cancel("self")
        return 12
      end
      local other = spawn(function() return 1 end)
      local err = H.errof(aio.gather, { spawn(selfcancel), other })
      assert.is_true(is_cancelled(err))
      assert.equal("self", err.message)
      local res = aio.gather({ spawn(selfcancel), spawn(function() return 2 end) },
        { return_exceptions = true })
      assert.equal(2, res.n)
      assert.is_true(is_cancelled(res[1]))
      assert.equal("self", res[1].message)
      assert.equal(2, res[2])
      settle({ other })
    end)
  end)

  it("a TaskGroup child doing it is cancelled and does not fail the group", function()
    run(function()
      local child, sibling
      local r = aio.TaskGroup(function(tg)
        child = tg:create_task(function()
          aio.current_task():cancel()
          return 12
        end)
        sibling = tg:create_task(function() aio.sleep(0); return 7 end)
        return "body"
      end)
      assert.equal("body", r)
      assert.is_true(child:cancelled())
      assert.equal(7, sibling:result())
      assert.equal(0, aio.current_task():cancelling())
    end)
  end)
end)

------------------------------------------------------------------ 3. cancel message
describe("t:cancel(msg): the message reaches the cancelled task through", function()
  local function sleeper() aio.sleep(100) end
  local ways = {
    { "await of a task", function() spawn(sleeper):await() end },
    { "sleep", function() aio.sleep(100) end },
    { "gather", function() aio.gather({ sleeper, sleeper }) end },
    { "gather with return_exceptions", function()
        aio.gather({ sleeper, sleeper }, { return_exceptions = true })
      end },
    -- (asyncio 3.13 drops the message here: it makes the error from the
    -- last child to finish, which swallowed its cancellation)
    { "gather with return_exceptions, a child that ignores it", function()
        aio.gather({ sleeper, function()
          pcall(aio.sleep, 100)      -- swallows its cancellation
          return "late"
        end }, { return_exceptions = true })
      end },
    { "gather of a future", function()
        aio.gather({ aio.Future() }, { return_exceptions = true })
      end },
    { "wait", function(bg) aio.wait({ bg(sleeper) }) end },
    { "wait with a timeout", function(bg) aio.wait({ bg(sleeper) }, { timeout = 50 }) end },
    { "wait_for", function() aio.wait_for(sleeper, 50) end },
    { "wait_for without a timeout", function() aio.wait_for(sleeper, nil) end },
    { "shield", function(bg) aio.shield(bg(sleeper)) end },
    { "as_completed", function(bg)
        for f in aio.as_completed({ bg(sleeper) }) do f:result() end
      end },
    { "as_completed with a timeout", function(bg)
        for f in aio.as_completed({ bg(sleeper) }, { timeout = 50 }) do f:result() end
      end },
    { "a TaskGroup body", function()
        aio.TaskGroup(function(tg)
          tg:create_task(sleeper)
          aio.sleep(100)
        end)
      end },
    { "a TaskGroup waiting for its children", function()
        local tg <close> = aio.TaskGroup()
        tg:create_task(sleeper)
      end },
    { "a timeout", function()
        local _ <close> = aio.timeout(50)
        aio.sleep(100)
      end },
    { "timeout's function form", function() aio.timeout(50, sleeper) end },
    { "Event:wait", function() aio.Event():wait() end },
    { "Lock:acquire", function()
        local l = aio.Lock(); l:acquire(); l:acquire()
      end },
    { "Condition:wait", function()
        local c = aio.Condition(); c:acquire(); c:wait()
      end },
    { "Semaphore:acquire", function() aio.Semaphore(0):acquire() end },
    { "Queue:get", function() aio.Queue():get() end },
    { "Queue:put", function()
        local q = aio.Queue(1); q:put(1); q:put(2)
      end },
    { "Barrier:wait", function() aio.Barrier(2):wait() end },
  }
  for _, w in ipairs(ways) do
    it(w[1], function()
      run(function()
        local extra = {}     -- tasks the combinator leaves running
        local function bg(f)
          extra[#extra + 1] = spawn(f)
          return extra[#extra]
        end
        local t = spawn(w[2], bg)
        spin(3)
        assert.is_false(t:done())
        t:cancel("my message")
        local err
        local ok = pcall(aio.wait_for, function() err = await_err(t) end, 5)
        assert(ok, "the task did not finish")
        assert.is_true(is_cancelled(err), tostring(err))
        assert.equal("my message", err.message)
        assert.is_true(t:cancelled())
        for _, x in ipairs(extra) do x:cancel() end
        settle(extra)
      end)
    end)
  end

  it("gather passes the message to its children (test_cancel_gather_2)", function()
    run(function()
      local children = { spawn(sleeper), spawn(sleeper) }
      local t = spawn(aio.gather, children, { return_exceptions = true })
      spin()
      t:cancel("my message")
      local err = await_err(t)
      assert.equal("my message", err.message)
      for _, c in ipairs(children) do
        assert.equal("my message", await_err(c).message)
      end
    end)
  end)

  it("cancelling the gather future itself: the same", function()
    run(function()
      local t = spawn(function()
        local qwe = spawn(function()
          local time = 0
          while true do
            time = time + 0.05
            aio.gather({ function() aio.sleep(time) end }, { return_exceptions = true })
          end
        end)
        aio.sleep(0.2)
        qwe:cancel("my message")
        qwe:await()
      end)
      local err = await_err(t)
      assert.is_true(is_cancelled(err))
      assert.equal("my message", err.message)
    end)
  end)
end)

------------------------------------------------------------------ misuse
-- asyncio's "has already been entered", "is finished", "has not been
-- entered" in Lua's spelling: making the object enters it; its __close
-- (a <close> variable going out of scope) exits it.
describe("TaskGroup misuse", function()
  local TWICE = "TaskGroup: closed twice (a group is entered when it is made "
    .. "and exited once: make a new one)"

  it("closing it again inside its scope (test_taskgroup_already_entered)", function()
    run(function()
      local ran = false
      local ok, err = pcall(function()
        local tg <close> = aio.TaskGroup()
        do
          local _ <close> = tg       -- exits the group here ...
        end
        ran = true
      end)                               -- ... and this close is refused
      assert.is_true(ran)
      assert.is_false(ok)
      assert.equal(TWICE, err)
    end)
  end)

  it("closing it again after its scope (test_taskgroup_double_enter)", function()
    run(function()
      local saved
      do
        local tg <close> = aio.TaskGroup()
        saved = tg
      end
      local err = H.errof(function()
        local _ <close> = saved
      end)
      assert.equal(TWICE, err)
      -- the function form exits it too
      local kept = aio.TaskGroup(function(tg) return tg end)
      assert.equal(TWICE, H.errof(function() local _ <close> = kept end))
    end)
  end)

  it("create_task on a finished group, spawning nothing (test_taskgroup_finished)", function()
    run(function()
      local saved
      do
        local tg <close> = aio.TaskGroup()
        tg:create_task(function() aio.sleep(0) end)
        saved = tg
      end
      local before = #aio.all_tasks()
      assert.equal("TaskGroup:create_task: the task group has finished",
        H.errof(saved.create_task, saved, function() end))
      assert.equal(before, #aio.all_tasks())
    end)
  end)

  it("create_task while exiting with children left is allowed (test_taskgroup_24)", function()
    run(function()
      local ran = {}
      aio.TaskGroup(function(tg)
        tg:create_task(function()
          aio.sleep(0.01)
          tg:create_task(function() aio.sleep(0.01); ran[#ran + 1] = "a" end)
          tg:create_task(function() aio.sleep(0.02); ran[#ran + 1] = "b" end)
        end)
      end)
      assert.same({ "a", "b" }, ran)
    end)
  end)

  it("closing it in another task is refused, and the owner can still close it", function()
    run(function()
      local tg = aio.TaskGroup()
      local child = tg:create_task(function() aio.sleep(0.01); return 5 end)
      local other = spawn(function()
        local _ <close> = tg
      end)
      assert.equal("TaskGroup: closed in a task other than the one that made it",
        await_err(other))
      do
        local _ <close> = tg                  -- the owner's exit waits
      end
      assert.equal(5, child:result())
    end)
  end)

  it("closed by coroutine.close in another task: its children are cancelled", function()
    run(function()
      local child
      local co = coroutine.create(function()
        local tg <close> = aio.TaskGroup()
        child = tg:create_task(function() aio.sleep(10) end)
        coroutine.yield()
      end)
      assert.is_true(coroutine.resume(co))
      local ok, err = spawn(function() return coroutine.close(co) end):await()
      assert.is_false(ok)
      assert.matches("TaskGroup: closed where Lua does not allow a yield", err, 1, true)
      settle({ child })
      assert.is_true(child:cancelled())
    end)
  end)

  it("a group whose task ended without closing it refuses create_task", function()
    run(function()
      local leaked
      spawn(function() leaked = aio.TaskGroup() end):await()   -- no <close>
      assert.matches("TaskGroup:create_task: the task that made the group has "
        .. "ended without closing it (declare it `local tg <close> = "
        .. "aio.TaskGroup()`)", H.errof(leaked.create_task, leaked, function() end),
        1, true)
    end)
  end)

  it("needs a running task (test_taskgroup_without_parent_task)", function()
    run(function()
      local res = H.in_callback(aio.TaskGroup)
      assert.is_false(res[1])
      assert.matches("TaskGroup: needs a running task (called outside a task)",
        res[2], 1, true)
    end)
  end)
end)

describe("timeout misuse", function()
  local TWICE = "Timeout: closed twice (a timeout is entered when it is made "
    .. "and exited once: make a new one)"

  it("closing it again inside its scope (test_timeout_already_entered)", function()
    run(function()
      local ok, err = pcall(function()
        local cm <close> = aio.timeout(10)
        do
          local _ <close> = cm
        end
      end)
      assert.is_false(ok)
      assert.equal(TWICE, err)
    end)
  end)

  it("closing it again after its scope (test_timeout_double_enter)", function()
    run(function()
      local saved
      do
        local cm <close> = aio.timeout(10)
        saved = cm
      end
      assert.equal(TWICE, H.errof(function() local _ <close> = saved end))
      local kept = aio.timeout(10, function(cm) return cm end)
      assert.equal(TWICE, H.errof(function() local _ <close> = kept end))
      -- an expired one too
      local expired
      local ok, err = pcall(aio.timeout, 0, function(cm)
        expired = cm
        aio.sleep(1)
      end)
      assert.is_false(ok)
      assert.is_true(aio.is(err, aio.TimeoutError))
      assert.equal(TWICE, H.errof(function() local _ <close> = expired end))
    end)
  end)

  it("reschedule on a finished, expiring or expired timeout (test_timeout_finished)", function()
    run(function()
      local cm = aio.timeout(10, function(cm) return cm end)
      assert.matches("reschedule: the timeout is finished, not active",
        H.errof(cm.reschedule, cm, aio.get_running_loop():time() + 1), 1, true)
      local expiring_err, expired
      local ok = pcall(aio.timeout, 0, function(c)
        expired = c
        local ok2, e = pcall(aio.sleep, 1)    -- the deadline cancels it
        assert(not ok2 and is_cancelled(e))
        expiring_err = H.errof(c.reschedule, c, nil)
        error(e, 0)
      end)
      assert.is_false(ok)
      assert.matches("reschedule: the timeout is expiring, not active", expiring_err, 1, true)
      assert.matches("reschedule: the timeout is expired, not active",
        H.errof(expired.reschedule, expired, nil), 1, true)
      assert.is_true(expired:expired())
    end)
  end)

  it("closing it in another task is refused, and the owner can still close it", function()
    run(function()
      local cm = aio.timeout(10)
      local other = spawn(function() local _ <close> = cm end)
      assert.equal("Timeout: closed in a task other than the one that made it",
        await_err(other))
      do
        local _ <close> = cm
      end
      assert.is_false(cm:expired())
      assert.matches("not active", H.errof(cm.reschedule, cm, nil), 1, true)
    end)
  end)

  it("needs a running task (test_timeout_without_task)", function()
    run(function()
      local res = H.in_callback(aio.timeout, 1)
      assert.is_false(res[1])
      assert.matches("timeout: needs a running task (called outside a task)",
        res[2], 1, true)
    end)
  end)
end)

------------------------------------------------------------------ ports
-- More of CPython's cases around the three bugs, in Lua.
local V = { clock = "virtual" }

describe("test_locks ports", function()
  it("test_cancel_release_race: one lock taken when the woken waiter is cancelled", function()
    run(function()
      local lock = aio.Lock()
      local lock_count, call_count = 0, 0
      local function lockit()
        call_count = call_count + 1
        lock:acquire()
        lock_count = lock_count + 1
      end
      lock:acquire()
      local t1, t2, t3 = spawn(lockit), spawn(lockit), spawn(lockit)
      aio.sleep(0)
      aio.get_running_loop():call_soon(function()
        t1:cancel()
        lock:release()
      end)
      assert.is_true(is_cancelled(await_err(t1)))
      assert.equal(1, lock_count)
      assert.equal(3, call_count)
      assert.is_true(t1:cancelled() and t2:done())
      t3:cancel()
      aio.sleep(0)
      assert.is_true(t3:cancelled())
    end)
  end)

  it("test_finished_waiter_cancelled", function()
    run(function()
      local lock = aio.Lock()
      lock:acquire()
      local tb = spawn(lock.acquire, lock)
      aio.sleep(0)
      local tc = spawn(lock.acquire, lock)
      tb:cancel()
      lock:release()
      aio.sleep(0)
      assert.is_true(lock:locked())
      assert.is_true(tb:cancelled())
      tc:await()
    end)
  end)

  it("test_acquire_hang (Semaphore)", function()
    run(function()
      local sem = aio.Semaphore(0)
      local t1, t2 = spawn(sem.acquire, sem), spawn(sem.acquire, sem)
      aio.sleep(0)
      t1:cancel()
      sem:release()
      aio.sleep(0)
      aio.sleep(0)
      assert.is_true(sem:locked())
      assert.is_true(t2:done())
    end)
  end)

  it("test_acquire_no_hang (Semaphore: the holder cancels the woken waiter)", function()
    run(function()
      local sem = aio.Semaphore(1)
      local t2
      local t1 = spawn(function()
        do
          local _ <close> = sem:acquire()
          aio.sleep(0)
        end                     -- the release wakes t2 ...
        t2:cancel()             -- ... which is cancelled before it runs
      end)
      t2 = spawn(function()
        local _ <close> = sem:acquire()
        error("t2 must not get the semaphore", 0)
      end)
      local r = aio.gather({ t1, t2 }, { return_exceptions = true })
      assert.is_nil(r[1])
      assert.is_true(is_cancelled(r[2]))
      aio.wait_for(function() sem:acquire() end, 1)
    end)
  end)

  it("test_wait_cancel_after_notify (Condition)", function()
    run(function()
      local cond = aio.Condition()
      local waited = false
      local waiter = spawn(function()
        local _ <close> = cond:acquire()
        waited = true
        cond:wait()
      end)
      aio.sleep(0.01)
      cond:acquire()
      cond:notify()
      aio.sleep(0)          -- to acquire()
      waiter:cancel()
      aio.sleep(0)          -- the cancellation is delivered
      cond:release()
      aio.sleep(0)          -- and raised
      assert.is_true(waiter:cancelled())
      assert.is_true(waited)
    end)
  end)

  it("test_wait_cancel_contested (Condition)", function()
    run(function()
      local cond = aio.Condition()
      cond:acquire()
      local wait_task = spawn(cond.wait, cond)
      aio.sleep(0)
      assert.is_false(cond:locked())
      cond:acquire()
      cond:notify()
      local loop = aio.get_running_loop()
      loop:call_soon(function() wait_task:cancel() end)
      loop:call_soon(function() cond:release() end)
      pcall(wait_task.await, wait_task)
      assert.is_true(cond:locked())
    end)
  end)

  it("test_timeout_in_block (Condition)", function()
    run(function()
      local cond = aio.Condition()
      local _ <close> = cond:acquire()
      local ok, err = pcall(aio.wait_for, function() cond:wait() end, 0.5)
      assert.is_false(ok)
      assert.is_true(aio.is(err, aio.TimeoutError))
    end, V)
  end)

  it("test_filling_tasks_cancel_one (Barrier)", function()
    run(function()
      local barrier = aio.Barrier(3)
      local results = {}
      local function coro()
        barrier:wait()
        results[#results + 1] = true
      end
      local t1 = spawn(coro)
      aio.sleep(0)
      assert.equal(1, barrier.n_waiting)
      local t2 = spawn(coro)
      aio.sleep(0)
      assert.equal(2, barrier.n_waiting)
      t1:cancel()
      aio.sleep(0)
      assert.equal(1, barrier.n_waiting)
      assert.is_true(is_cancelled(await_err(t1)))
      assert.is_true(t1:cancelled())
      local t3 = spawn(coro)
      aio.sleep(0)
      assert.equal(2, barrier.n_waiting)
      local t4 = spawn(coro)
      aio.gather({ t2, t3, t4 })
      assert.equal(3, #results)
      assert.equal(0, barrier.n_waiting)
      assert.is_false(barrier.broken)
    end)
  end)
end)

describe("test_queues ports", function()
  it("test_cancelled_puts_not_being_held_in_self._putters", function()
    run(function()
      local q = aio.Queue(1)
      q:put_nowait(1)
      local ok, err = pcall(aio.wait_for, function() q:put(2) end, 0.01)
      assert.is_false(ok)
      assert.is_true(aio.is(err, aio.TimeoutError))
      assert.equal(1, q:get_nowait())
      q:put_nowait(3)                 -- no ghost putter filled the slot
      assert.equal(3, q:get_nowait())
    end, V)
  end)

  it("test_why_are_getters_waiting", function()
    run(function()
      local q = aio.Queue()
      local function consumer(n)
        for _ = 1, n do q:get() end
      end
      local function producer(n)
        for i = 1, n do
          q:put(i)
          aio.sleep(0)
        end
      end
      aio.gather({ function() consumer(3) end, function() producer(3) end })
      assert.is_true(q:empty())
    end)
  end)

  it("test_why_are_putters_waiting", function()
    run(function()
      local q = aio.Queue(2)
      local function putter(i) q:put(i) end
      local ts = {}
      for i = 1, 3 do ts[i] = spawn(putter, i) end
      aio.sleep(0)
      aio.sleep(0)
      local got = {}
      for i = 1, 3 do
        local x = q:get()
        got[i] = x
      end
      aio.gather(ts)
      assert.same({ 1, 2, 3 }, got)
    end)
  end)

  it("test_get_with_waiting_putters", function()
    run(function()
      local q = aio.Queue(1)
      spawn(q.put, q, "a")
      spawn(q.put, q, "b")
      aio.sleep(0)
      assert.equal("a", q:get())
      assert.equal("b", q:get())
    end)
  end)

  it("a float maxsize is refused (asyncio's test_float_maxsize accepts 1.3)", function()
    run(function()
      for _, f in ipairs { "Queue", "LifoQueue", "PriorityQueue" } do
        assert.matches("bad argument #1 to '" .. f .. "' (integer expected, got float)",
          H.errof(aio[f], 1.3), 1, true)
      end
      assert.matches("bad argument #1 to 'Queue' (integer expected, got float)",
        H.errof(aio.Queue, 2.0), 1, true)
      assert.equal(2, aio.Queue(2).maxsize)
    end)
  end)
end)

describe("test_tasks cancellation ports", function()
  it("test_cancel_with_message_before_starting_task", function()
    run(function()
      local t = spawn(function() aio.sleep(10) end)
      t:cancel("my message")
      local err = await_err(t)
      assert.is_true(is_cancelled(err))
      assert.equal("my message", err.message)
    end)
  end)

  it("test_cancel_current_task: the next suspension raises", function()
    run(function()
      local t
      t = spawn(function()
        t:cancel()
        aio.sleep(100)
        return 12
      end)
      assert.is_true(is_cancelled(await_err(t)))
      assert.is_true(t:cancelled())
      assert.is_false(t:cancel())
    end)
  end)

  it("test_cancel_awaited_task: a self-cancelled task's next await cancels what it awaits", function()
    run(function()
      local fut = aio.Future()
      local nested
      local task
      task = spawn(function()
        nested = spawn(function() fut:await() end)
        aio.sleep(0)
        task:cancel()
        nested:await()
      end)
      assert.is_true(is_cancelled(await_err(task)))
      assert.is_true(task:cancelled())
      assert.is_true(nested:cancelled())
      assert.is_true(fut:cancelled())
    end)
  end)

  it("test_cancel_both_task_and_inner_future", function()
    run(function()
      local f = aio.Future()
      local t = spawn(function()
        f:await()
        return 12
      end)
      aio.sleep(0)
      f:cancel()
      t:cancel()
      assert.is_true(is_cancelled(await_err(t)))
      assert.is_true(t:done() and f:cancelled() and t:cancelled())
    end)
  end)

  it("test_cancel_task_catching / test_cancel_task_ignoring", function()
    run(function()
      local fut1, fut2 = aio.Future(), aio.Future()
      local t = spawn(function()
        fut1:await()
        local ok, err = pcall(fut2.await, fut2)
        assert(not ok and is_cancelled(err))
        return 42
      end)
      aio.sleep(0)
      fut1:set_result(nil)
      aio.sleep(0)
      t:cancel()
      assert.equal(42, t:await())
      assert.is_false(t:cancelled())
      local f1, f2, f3 = aio.Future(), aio.Future(), aio.Future()
      local u = spawn(function()
        f1:await()
        pcall(f2.await, f2)
        return f3:await()
      end)
      aio.sleep(0)
      f1:set_result(nil)
      aio.sleep(0)
      u:cancel()
      aio.sleep(0)
      assert.is_true(f2:cancelled())
      f3:set_result(42)
      assert.equal(42, u:await())
    end)
  end)

  it("test_uncancel_structured_blocks", function()
    run(function()
      local function make_request_with_timeout(sleep, timeout)
        local task = aio.current_task()
        local loop = aio.get_running_loop()
        local timed_out = false
        local structured_block_finished = false
        local function on_timeout()
          timed_out = true
          task:cancel()
        end
        local h = loop:call_later(timeout, on_timeout)
        local ok, err = pcall(function()
          aio.sleep(sleep)
          structured_block_finished = true
        end)
        h:cancel()
        if not ok then
          assert(is_cancelled(err))
          if not (timed_out and task:uncancel() == 0) then error(err, 0) end
        end
        local outer_code_reached = true     -- not affected by the timeout
        aio.sleep(0)
        return timed_out, structured_block_finished, outer_code_reached
      end
      local t1 = spawn(make_request_with_timeout, 10, 0.1)
      local a, b, c = t1:await()
      assert.is_true(a); assert.is_false(b); assert.is_true(c)
      assert.equal(0, t1:cancelling())
      local t2 = spawn(make_request_with_timeout, 0, 10)
      a, b, c = t2:await()
      assert.is_false(a); assert.is_true(b); assert.is_true(c)
      assert.equal(0, t2:cancelling())
    end, V)
  end)
end)

describe("gather and shield ports", function()
  it("test_shield_effect: cancelling the caller leaves the inner task running", function()
    run(function()
      local proof = 0
      local waiter = aio.Future()
      local f = spawn(function()
        aio.shield(function()
          waiter:await()
          proof = proof + 1
        end)
        proof = proof + 100
      end)
      aio.sleep(0)
      f:cancel()
      assert.is_true(is_cancelled(await_err(f)))
      waiter:set_result(nil)
      spin(3)
      assert.equal(1, proof)
    end)
  end)

  it("test_shield_cancel_inner: the inner's cancellation reaches the caller", function()
    run(function()
      local inner = aio.Future()
      local t = spawn(aio.shield, inner)
      aio.sleep(0)
      inner:cancel()
      spin(2)
      assert.is_true(t:cancelled())
    end)
  end)

  it("test_shield_gather / test_gather_shield", function()
    run(function()
      local c1, c2 = aio.Future(), aio.Future()
      local parent = spawn(aio.gather, { c1, c2 })
      local outer = spawn(aio.shield, parent)
      aio.sleep(0)
      outer:cancel()
      aio.sleep(0)
      assert.is_true(outer:cancelled())
      c1:set_result(1)
      c2:set_result(2)
      spin(2)
      local r = parent:result()
      assert.same({ 1, 2, n = 2 }, r)

      local d1, d2 = aio.Future(), aio.Future()
      local inner1 = spawn(aio.shield, d1)
      local inner2 = spawn(aio.shield, d2)
      local p = spawn(aio.gather, { inner1, inner2 })
      aio.sleep(0)
      p:cancel()
      spin(2)
      assert.is_true(is_cancelled(await_err(p)))
      assert.is_true(inner1:cancelled() and inner2:cancelled())
      assert.is_false(d1:done() or d2:done())
      d1:set_result(1)
      d2:set_result(2)
    end)
  end)

  it("gather without return_exceptions: the first cancelled child's error, message kept", function()
    run(function()
      local a = spawn(function() aio.sleep(10) end)
      local b = spawn(function() aio.sleep(10) end)
      local g = spawn(aio.gather, { a, b })
      aio.sleep(0)
      a:cancel("child message")
      local err = await_err(g)
      assert.equal("child message", err.message)
      assert.is_false(b:done())
      b:cancel()
      settle({ b })
    end)
  end)
end)

describe("test_waitfor ports", function()
  it("test_cancel_wait_for / test_cancel_blocking_wait_for: the task is cancelled too", function()
    run(function()
      for _, timeout in ipairs { 60, false } do
        local task = spawn(function() aio.Future():await() end)
        local wait = spawn(aio.wait_for, task, timeout or nil)
        aio.get_running_loop():call_soon(function() wait:cancel() end)
        assert.is_true(is_cancelled(await_err(wait)))
        assert.is_true(task:cancelled())
      end
    end)
  end)

  it("wait_for cancelled while the task holds up its cancellation: its value (asyncio 3.13)", function()
    -- (3.13 dropped test_wait_for_self_cancellation: the task's value is
    -- returned, as luaio does; checked against CPython 3.13.0)
    run(function()
      local inner_task = spawn(function()
        if not pcall(aio.sleep, 0.3) then
          if not pcall(aio.sleep, 0.3) then aio.sleep(0.3) end
        end
        return 42
      end)
      local task = spawn(aio.wait_for, inner_task, 0.1)
      aio.sleep(0.2)
      assert.is_true(task:cancel())
      assert.equal(42, task:await())
      assert.equal(42, inner_task:await())
      assert.equal(1, task:cancelling())
    end, V)
  end)

  it("test_wait_for_cancel_suppressed: the value is returned", function()
    run(function()
      local res = aio.wait_for(function()
        local ok = pcall(aio.sleep, 10)
        assert(not ok)
        return 42
      end, 0.1)
      assert.equal(42, res)
    end, V)
  end)

  it("test_wait_for_issue86296: cancelled after the inner task ended, the caller is cancelled", function()
    run(function()
      local inner_task = spawn(function() return "done" end)
      local reached_end = false
      local task = spawn(function()
        aio.wait_for(inner_task, 100)
        aio.sleep(1)
        reached_end = true
      end)
      assert.is_false(task:done())
      aio.sleep(0)
      task:cancel()
      assert.is_true(is_cancelled(await_err(task)))
      assert.is_true(inner_task:done())
      assert.equal("done", inner_task:await())
      assert.is_false(reached_end)
    end, V)
  end)

  it("test_wait_for_reraises_exception_during_cancellation", function()
    run(function()
      local inner_task = spawn(function()
        local _ <close> = setmetatable({}, { __close = function() error("Foo", 0) end })
        aio.sleep(0.2)
      end)
      assert.equal("Foo", H.errof(aio.wait_for, inner_task, 0.001))
    end, V)
  end)

  it("test_wait_for_waits_for_task_cancellation (timeout > 0 and 0)", function()
    run(function()
      for _, timeout in ipairs { 0.001, 0 } do
        local task_done = false
        local inner_task = spawn(function()
          local _ <close> = setmetatable({}, { __close = function() task_done = true end })
          local ok, err = pcall(aio.sleep, 10)
          if not ok then
            aio.sleep(0.001)
            error(err, 0)
          end
        end)
        aio.sleep(0.0001)
        local err = H.errof(aio.wait_for, inner_task, timeout)
        assert.is_true(aio.is(err, aio.TimeoutError), tostring(err))
        assert.is_true(task_done)
      end
    end, V)
  end)
end)

describe("test_taskgroups ports (cancellation)", function()
  local function raise_after(t, e)
    return function()
      aio.sleep(t)
      error(e, 0)
    end
  end

  it("test_cancellation_in_body: the message arrives", function()
    run(function()
      local r = spawn(function()
        aio.TaskGroup(function(g)
          for _ = 1, 5 do g:create_task(raise_after(0.1, "zero")) end
          aio.sleep(10)
        end)
      end)
      aio.sleep(0.05)
      assert.is_false(r:done())
      r:cancel("test")
      local err = await_err(r)
      assert.is_true(is_cancelled(err))
      assert.equal("test", err.message)
    end, V)
  end)

  it("test_cancelling_level_preserved", function()
    run(function()
      local ok = pcall(aio.TaskGroup, function(tg)
        tg:create_task(raise_after(0, "RuntimeError"))
      end)
      assert.is_false(ok)
      assert.equal(0, aio.current_task():cancelling())
    end)
  end)

  it("test_nested_groups_both_cancelled", function()
    run(function()
      local ok, err = pcall(aio.TaskGroup, function(outer_tg)
        local ok2, err2 = pcall(aio.TaskGroup, function(inner_tg)
          inner_tg:create_task(raise_after(0, "RuntimeError"))
          outer_tg:create_task(raise_after(0, "ValueError"))
        end)
        assert(not ok2 and aio.is(err2, aio.ExceptionGroup))
        assert.equal("RuntimeError", err2.exceptions[1])
        assert.equal(1, aio.current_task():cancelling())
      end)
      assert.is_false(ok)
      assert.equal("ValueError", err.exceptions[1])
      assert.equal(0, aio.current_task():cancelling())
    end)
  end)

  it("test_error_and_cancel: the outside cancellation survives the group's error", function()
    run(function()
      local event = aio.Event()
      local reached
      local t = spawn(function()
        local ok, err = pcall(aio.TaskGroup, function(tg)
          tg:create_task(function()
            event:set()
            aio.sleep(0)
            error("RuntimeError", 0)
          end)
          aio.sleep(1)
          error("the sleep in the group should have been cancelled", 0)
        end)
        assert(not ok and aio.is(err, aio.ExceptionGroup), tostring(err))
        assert.equal(1, aio.current_task():cancelling())
        aio.sleep(1)
        reached = true
      end)
      event:wait()
      assert.equal(0, t:cancelling())
      t:cancel()
      assert.equal(1, t:cancelling())
      assert.is_true(is_cancelled(await_err(t)))
      assert.is_true(t:cancelled())
      assert.is_nil(reached)
    end, V)
  end)

  it("test_taskgroup_03: a child cancelled explicitly does not stop the group", function()
    run(function()
      local t1, t2
      aio.TaskGroup(function(g)
        t1 = g:create_task(function() aio.sleep(1); return 42 end)
        aio.sleep(0.15)
        t1:cancel()
        t2 = g:create_task(function() aio.sleep(0.2); return 11 end)
      end)
      assert.is_true(t1:cancelled())
      assert.equal(11, t2:result())
    end, V)
  end)
end)

describe("test_timeouts ports (cancellation)", function()
  it("test_timeout_after_cancellation: a timeout in the cleanup after a swallowed cancel", function()
    run(function()
      aio.current_task():cancel()
      assert.is_false(pcall(aio.sleep, 1))
      local err = H.errof(aio.timeout, 0, function() aio.sleep(1) end)
      assert.is_true(aio.is(err, aio.TimeoutError))
    end, V)
  end)

  it("test_cancel_in_timeout_after_cancellation", function()
    run(function()
      aio.current_task():cancel()
      assert.is_false(pcall(aio.sleep, 1))
      local err = H.errof(aio.timeout, 1, function()
        aio.current_task():cancel()
        aio.sleep(2)
      end)
      assert.is_true(is_cancelled(err))
      aio.current_task():uncancel()
      aio.current_task():uncancel()
    end, V)
  end)

  it("test_foreign_cancel_doesnt_timeout_if_not_expired: the message is kept", function()
    run(function()
      local cm
      local err = H.errof(aio.timeout, 10, function(c)
        cm = c
        aio.current_task():cancel("foreign")
        aio.sleep(10)
      end)
      assert.is_true(is_cancelled(err))
      assert.equal("foreign", err.message)
      assert.is_false(cm:expired())
      aio.current_task():uncancel()
    end, V)
  end)

  it("test_nested_timeout_in_finally", function()
    run(function()
      local inner_err
      local err = H.errof(aio.timeout, 0.01, function()
        local _ <close> = setmetatable({}, { __close = function()
          inner_err = H.errof(aio.timeout, 0.01, function() aio.sleep(10) end)
        end })
        aio.sleep(1)
      end)
      assert.is_true(aio.is(err, aio.TimeoutError))
      assert.is_true(aio.is(inner_err, aio.TimeoutError))
    end, V)
  end)

  it("test_outer_task_is_not_cancelled", function()
    run(function()
      local task = spawn(function()
        local err = H.errof(aio.timeout, 0.001, function() aio.sleep(10) end)
        assert(aio.is(err, aio.TimeoutError))
      end)
      task:await()
      assert.is_false(task:cancelled())
      assert.is_true(task:done())
    end, V)
  end)
end)

describe("more 3.13 ports", function()
  it("test_get_cancel_drop_one_pending_reader", function()
    run(function()
      local q = aio.Queue()
      local reader = spawn(q.get, q)
      aio.sleep(0)
      q:put_nowait(1)
      q:put_nowait(2)
      reader:cancel()
      if not pcall(reader.await, reader) then
        reader = spawn(q.get, q)     -- try again
        reader:await()
      end
      assert.equal(1, reader:result())   -- 2 would mean 1 was dropped
    end)
  end)

  it("test_get_cancel_drop_many_pending_readers", function()
    run(function()
      local q = aio.Queue()
      local reader2, reader3
      aio.TaskGroup(function(tg)
        local reader1 = tg:create_task(q.get, q)
        reader2 = tg:create_task(q.get, q)
        reader3 = tg:create_task(q.get, q)
        aio.sleep(0)
        q:put_nowait(1)
        q:put_nowait(2)
        reader1:cancel()
        assert.is_true(is_cancelled(await_err(reader1)))
        reader3:await()
      end)
      local got = { reader2:result(), reader3:result() }
      table.sort(got)
      assert.same({ 1, 2 }, got)
    end)
  end)

  it("test_put_cancel_drop", function()
    run(function()
      local q = aio.Queue(1)
      q:put_nowait(1)
      local writer = spawn(q.put, q, 2)
      aio.sleep(0)
      assert.equal(1, q:get_nowait())
      writer:cancel()
      if not pcall(writer.await, writer) then
        writer = spawn(q.put, q, 2)
        writer:await()
      end
      assert.equal(2, q:get_nowait())
      assert.equal(0, q:qsize())
    end)
  end)

  it("test_put_cancelled_race", function()
    run(function()
      local q = aio.Queue(1)
      local put_a = spawn(q.put, q, "a")
      local put_b = spawn(q.put, q, "b")
      local put_c = spawn(q.put, q, "X")
      aio.sleep(0)
      assert.is_true(put_a:done())
      assert.is_false(put_b:done())
      put_c:cancel()
      aio.sleep(0)
      assert.is_true(put_c:done())
      assert.equal("a", q:get_nowait())
      aio.sleep(0)
      assert.equal("b", q:get_nowait())
      put_b:await()
    end)
  end)

  it("test_cancellation_broadcast: cancelling gather's caller cancels every child", function()
    run(function()
      local proof = 0
      local waiter = aio.Future()
      local function inner()
        waiter:await()
        proof = proof + 1
      end
      local child1, child2 = spawn(inner), spawn(inner)
      local f = spawn(function()
        aio.gather({ child1, child2 })
        proof = proof + 100
      end)
      aio.sleep(0)
      assert.is_true(f:cancel())
      assert.is_true(is_cancelled(await_err(f)))
      assert.is_true(waiter:cancelled())
      assert.is_true(child1:cancelled())
      assert.is_true(child2:cancelled())
      aio.sleep(0)
      assert.equal(0, proof)
    end)
  end)

  it("test_result_exception_one_cancellation: cancelled futures are listed", function()
    run(function()
      local fs = {}
      for i = 1, 6 do fs[i] = aio.Future() end
      local g = spawn(aio.gather, fs, { return_exceptions = true })
      aio.sleep(0)
      fs[1]:set_result(1)
      fs[2]:set_exception("zde")
      fs[3]:cancel()
      spin(2)
      assert.is_false(g:done())
      fs[4]:set_result(3)
      fs[5]:cancel("five")
      fs[6]:set_exception("rte")
      local res = g:await()
      assert.is_true(is_cancelled(res[3]))
      assert.is_true(is_cancelled(res[5]))
      assert.equal("five", res[5].message)
      assert.same({ 1, "zde", 3, "rte" }, { res[1], res[2], res[4], res[6] })
    end)
  end)

  it("test_cancel_with_message_then_future_result/exception: any message value", function()
    run(function()
      for _, msg in ipairs { "my message", 5, false } do
        for _, method in ipairs { "result", "exception" } do
          local t = spawn(function()
            local task = spawn(function() aio.sleep(10) end)
            aio.sleep(0)
            if msg then task:cancel(msg) else task:cancel() end
            aio.wait({ task })
            task[method](task)
          end)
          local err = await_err(t)
          assert.is_true(is_cancelled(err))
          assert.equal(msg or nil, err.message)
        end
      end
    end)
  end)

  it("test_taskgroup_no_create_task_after_failure", function()
    run(function()
      local refused
      local ok, err = pcall(aio.TaskGroup, function(g)
        g:create_task(function() aio.sleep(0.001); error("ZeroDivisionError", 0) end)
        g:create_task(function()
          if not pcall(aio.sleep, 1) then
            refused = H.errof(g.create_task, g, function() end)
          end
        end)
      end)
      assert.is_false(ok)
      assert.same({ "ZeroDivisionError" }, err.exceptions)
      assert.equal("TaskGroup:create_task: the task group is shutting down", refused)
    end, V)
  end)

  it("test_taskgroup_context_manager_exit_raises", function()
    run(function()
      local t = spawn(function()
        local task = aio.current_task()
        local ok, err = pcall(function()
          local tg <close> = aio.TaskGroup()
          local _ <close> = setmetatable({}, { __close = function()   -- database()
            error("CustomException", 0)
          end })
          tg:create_task(function() error("CustomException", 0) end)
          aio.sleep(1)
        end)
        assert(not ok and aio.is(err, aio.ExceptionGroup), tostring(err))
        assert.equal(0, task:cancelling())
        assert.equal(2, #err.exceptions)
      end)
      t:await()
    end, V)
  end)
end)

describe("timeout states in asyncio's words", function()
  it("tostring says active, expiring, expired, finished (test_repr_*)", function()
    run(function()
      local seen = {}
      aio.timeout(10, function(cm) seen.active = tostring(cm) end)
      local finished = aio.timeout(10, function(cm) return cm end)
      local expired
      pcall(aio.timeout, 0, function(cm)
        expired = cm
        pcall(aio.sleep, 1)
        seen.expiring = tostring(cm)
        error("done", 0)
      end)
      assert.matches("^Timeout%(when=[%d.]+, active%)$", seen.active)
      assert.matches(", expiring%)$", seen.expiring)
      assert.matches(", expired%)$", tostring(expired))
      assert.matches(", finished%)$", tostring(finished))
      assert.equal("Timeout(when=nil, active)",
        aio.timeout(nil, function(cm) return tostring(cm) end))
    end, V)
  end)
end)

describe("Semaphore ports (FIFO and cancellation)", function()
  it("test_acquire_cancel_before_awoken", function()
    run(function()
      local sem = aio.Semaphore(0)
      local t = {}
      for i = 1, 4 do t[i] = spawn(sem.acquire, sem) end
      aio.sleep(0)
      t[1]:cancel()
      t[2]:cancel()
      sem:release()
      aio.sleep(0)
      aio.sleep(0)
      assert.is_true(t[3]:done())
      assert.is_false(t[4]:done())
      t[3]:cancel()
      t[4]:cancel()
      aio.sleep(0)
    end)
  end)

  it("test_acquire_fifo_order_3: a waiter cancelled before the releases", function()
    run(function()
      local sem = aio.Semaphore(0)
      local result = {}
      local ts = {}
      for i = 1, 3 do
        ts[i] = spawn(function()
          sem:acquire()
          result[#result + 1] = i
        end)
      end
      aio.sleep(0)
      ts[1]:cancel()
      aio.sleep(0)
      sem:release()
      sem:release()
      aio.gather(ts, { return_exceptions = true })
      assert.same({ 2, 3 }, result)
    end)
  end)

  it("test_acquire_fifo_order_4: woken waiters keep their place", function()
    run(function()
      local sem = aio.Semaphore(0)
      local result = {}
      local t4
      local t1 = spawn(function()
        sem:acquire()
        t4 = spawn(function() result[#result + 1] = 4 end)
        result[#result + 1] = 1
      end)
      local t2 = spawn(function()
        sem:release(); sem:release(); sem:release()
        assert.is_true(sem:locked())      -- t1 has not run yet
        sem:acquire()
        result[#result + 1] = 2
      end)
      local t3 = spawn(function()
        sem:acquire()
        assert.is_true(sem:locked())
        result[#result + 1] = 3
      end)
      aio.sleep(0)
      aio.sleep(0)
      aio.gather({ t1, t2, t3, t4 })
      assert.same({ 1, 2, 3, 4 }, result)
    end)
  end)

  it("test_acquire_fifo_order_2", function()
    run(function()
      local sem = aio.Semaphore(1)
      local result = {}
      local t1 = spawn(function() sem:acquire(); result[#result + 1] = 1 end)
      local t2 = spawn(function()
        sem:acquire(); result[#result + 1] = 2
        sem:release()
        sem:acquire(); result[#result + 1] = 4
      end)
      local t3 = spawn(function() sem:acquire(); result[#result + 1] = 3 end)
      aio.sleep(0)
      sem:release()
      sem:release()
      aio.gather({ t1, t2, t3 })
      assert.same({ 1, 2, 3, 4 }, result)
    end)
  end)
end)

------------------------------------------------------------------ random
-- Seeded random interleavings: waiters cancelled at random points (on
-- the list, woken but not yet run, re-taking a lock) must never strand a
-- wake-up, a permit or an item.  A lost one leaves the system stuck with
-- work pending, which the checks at quiescence catch.
describe("random cancellations lose no wake-up", function()
  local SEEDS = 40

  -- Spins until pred() holds (at most n passes); returns whether it did.
  local function until_(pred, n)
    for _ = 1, n or 200 do
      if pred() then return true end
      aio.sleep(0)
    end
    return pred()
  end

  -- A live task of list: often the oldest (first in line, so the one a
  -- wake-up reaches), else any.
  local function pick(rng, list)
    local live = {}
    for _, t in ipairs(list) do if not t:done() then live[#live + 1] = t end end
    if #live == 0 then return nil end
    if rng(2) == 1 then return live[1] end
    return live[rng(#live)]
  end

  local function rng_of(seed)
    local x = seed * 7919 + 17
    return function(n)
      x = (x * 1103515245 + 12345) % 2147483648
      return x % n + 1
    end
  end

  it("Condition: every item produced is consumed", function()
    run(function()
      for seed = 1, SEEDS do
        local rng = rng_of(seed)
        local cond = aio.Condition()
        local items, consumed, produced = 0, 0, 0
        local consumers = {}
        local function consumer()
          local _ <close> = cond:acquire()
          while true do
            cond:wait_for(function() return items ~= 0 end)
            if items < 0 then return end
            items = items - 1
            consumed = consumed + 1
          end
        end
        for i = 1, 6 do consumers[i] = spawn(consumer) end
        aio.sleep(0)
        local cancels = 0          -- at most 4: some consumers stay
        local function cancel_one()
          local t = cancels < 4 and pick(rng, consumers)
          if t then t:cancel(); cancels = cancels + 1 end
        end
        for _ = 1, 30 do
          cond:acquire()
          items = items + 1
          produced = produced + 1
          cond:notify(1)
          if rng(2) == 1 then aio.sleep(0) end     -- the woken queue for the lock
          local r = rng(4)
          if r == 1 then cancel_one() end          -- on its way back in
          cond:release()
          if r == 2 then cancel_one() end          -- woken by the lock, not yet run
          -- one notification per item: a lost one strands it
          local ok = until_(function() return items == 0 end, 20)
          assert(ok, ("seed %d: %d item(s) stranded"):format(seed, items))
        end
        assert.equal(produced, consumed)
        cond:acquire()
        items = -1
        cond:notify_all()
        cond:release()
        settle(consumers)
        assert.is_false(cond:locked())
      end
    end)
  end)

  it("Semaphore and Lock: every permit comes back", function()
    run(function()
      for seed = 1, SEEDS do
        for _, make in ipairs { function() return aio.Semaphore(2), 2 end,
                                function() return aio.BoundedSemaphore(3), 3 end,
                                function() return aio.Lock(), 1 end } do
          local rng = rng_of(seed)
          local sem, permits = make()
          local inside, max_inside, done = 0, 0, 0
          local workers = {}
          local function worker(hold)
            sem:acquire()
            inside = inside + 1
            if inside > max_inside then max_inside = inside end
            local ok, err = pcall(function()
              for _ = 1, hold do aio.sleep(0) end
            end)
            inside = inside - 1
            sem:release()
            if not ok then error(err, 0) end
            done = done + 1
          end
          for _ = 1, 40 do
            workers[#workers + 1] = spawn(worker, rng(3) - 1)
            if rng(3) == 1 then
              local t = pick(rng, workers)
              if t then t:cancel() end
            end
            for _ = 1, rng(2) - 1 do aio.sleep(0) end
          end
          settle(workers)
          assert.equal(0, inside)
          assert(max_inside <= permits, "more holders than permits")
          -- all permits back: that many acquire without waiting
          for _ = 1, permits do
            assert.is_false(sem:locked(), ("seed %d: a permit was lost"):format(seed))
            sem:acquire()
          end
          assert.is_true(sem:locked())
          for _ = 1, permits do sem:release() end
          assert(done > 0)
        end
      end
    end)
  end)

  it("Queue: every item put is got, with getters and putters cancelled", function()
    run(function()
      for seed = 1, SEEDS do
        local rng = rng_of(seed)
        local q = aio.Queue(2)
        local got, put = {}, 0
        local getters, putters = {}, {}
        -- at quiescence no getter may wait while items are queued, and no
        -- putter while there is room
        local function check()
          local wg, wp = 0, 0
          for _, t in ipairs(getters) do if not t:done() then wg = wg + 1 end end
          for _, t in ipairs(putters) do if not t:done() then wp = wp + 1 end end
          assert(not (wg > 0 and q:qsize() > 0),
            ("seed %d: a getter waits with %d item(s) queued"):format(seed, q:qsize()))
          assert(not (wp > 0 and not q:full()),
            ("seed %d: a putter waits with room in the queue"):format(seed))
        end
        for i = 1, 30 do
          -- phases: more getters than items, then more items than room
          local getter_odds = i <= 15 and 1 or 3
          if rng(getter_odds) == 1 then
            putters[#putters + 1] = spawn(function()
              q:put(i)
              put = put + 1
            end)
          end
          if rng(4 - getter_odds) == 1 then
            getters[#getters + 1] = spawn(function()
              local v = q:get()
              got[#got + 1] = v
            end)
          end
          aio.sleep(0)
          if rng(2) == 1 and not q:full() then   -- wakes a getter
            q:put_nowait(-i)
            put = put + 1
          end
          if rng(3) == 1 and not q:empty() then  -- wakes a putter
            got[#got + 1] = q:get_nowait()
          end
          local r = rng(3)
          if r == 1 then
            local t = pick(rng, getters)
            if t then t:cancel() end
          elseif r == 2 then
            local t = pick(rng, putters)
            if t then t:cancel() end
          end
          for _ = 1, 3 do aio.sleep(0) end
          check()
        end
        assert.equal(put, #got + q:qsize())
        for _, t in ipairs(getters) do t:cancel() end
        for _, t in ipairs(putters) do t:cancel() end
        settle(getters)
        settle(putters)
      end
    end)
  end)
end)
