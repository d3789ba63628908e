-- spec/fidelity_spec.lua: asyncio fidelity (issue 23), three bugs:
--   1. a wake-up (notification, lock, permit, item, slot) that reached a
--      waiter which then leaves with an error is handed on, never lost;
--      each case cancels exactly between the wake-up and the resume, and
--      seeded random cancellations check it at every step;
--   2. a task that cancels itself and returns without suspending ends
--      cancelled (a cancel request still pending at the end wins);
--   3. a cancel message reaches the cancelled task through every
--      combinator.
-- CPython's cases around them: fidelity_ports_spec.lua; TaskGroup and
-- timeout misuse: fidelity_misuse_spec.lua.
local aio = require "luaio"
local H = require "helper"

local run = H.guarded
local spin = H.spin
local settle = H.settle

local function spawn(f, ...) return aio.create_task(f, ...) end
local is_cancelled = H.is_cancelled

local await_err = H.await_err

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
