-- spec/sync_spec.lua: Lock, Event, Condition, Semaphore, BoundedSemaphore,
-- Barrier (asyncio 3.13 locks.py), with the cancellation races: a waiter
-- cancelled while it waits, and one cancelled after its wake-up reached it
-- but before it ran (no lost wake-up, no lost permit).
local aio = require "luaio"
local H = require "helper"

local V = { clock = "virtual" }

local run = H.guarded

local function is_cancelled(err) return aio.is(err, aio.CancelledError) end
local function is_broken(err) return aio.is(err, aio.BrokenBarrierError) end

local spin = H.spin

local function spawn(f, ...) return aio.create_task(f, ...) end

local settle = H.settle

local in_callback = H.in_callback

local function needs_task(f, ...)
  local res = in_callback(f, ...)
  assert.is_false(res[1])
  assert.matches("needs a running task", tostring(res[2]), 1, true)
end

------------------------------------------------------------------ Lock
describe("Lock", function()
  it("acquire returns the lock as a guard; locked/release", function()
    run(function()
      local lock = aio.Lock()
      assert.is_false(lock:locked())
      assert.equal(lock, lock:acquire())
      assert.is_true(lock:locked())
      lock:release()
      assert.is_false(lock:locked())
      do
        local _ <close> = lock:acquire()
        assert.is_true(lock:locked())
      end
      assert.is_false(lock:locked())
      local ok, err = pcall(function()
        local _ <close> = lock:acquire()
        error("boom", 0)
      end)
      assert.is_false(ok)
      assert.equal("boom", err)
      assert.is_false(lock:locked())
    end)
  end)

  it("may be created outside a loop and used in one", function()
    local lock = aio.Lock()
    run(function()
      local _ <close> = lock:acquire()
      assert.is_true(lock:locked())
    end)
    assert.is_false(lock:locked())
  end)

  it("release() of an unlocked lock is a clear error", function()
    local lock = aio.Lock()
    local ok, err = pcall(lock.release, lock)
    assert.is_false(ok)
    assert.matches("release", tostring(err), 1, true)
    run(function()
      lock:acquire()
      lock:release()
      local ok2, err2 = pcall(lock.release, lock)
      assert.is_false(ok2)
      assert.matches("release", tostring(err2), 1, true)
      assert.is_false(lock:locked())
    end)
  end)

  it("acquire outside a task needs a running task (even when free)", function()
    run(function()
      local lock = aio.Lock()
      needs_task(lock.acquire, lock)
      assert.is_false(lock:locked())
    end)
  end)

  it("serialises tasks", function()
    run(function()
      local lock = aio.Lock()
      local inside, max = 0, 0
      local ts = {}
      for i = 1, 5 do
        ts[i] = spawn(function()
          for _ = 1, 3 do
            local _ <close> = lock:acquire()
            inside = inside + 1
            if inside > max then max = inside end
            aio.sleep(0)
            inside = inside - 1
          end
        end)
      end
      settle(ts)
      assert.equal(1, max)
      assert.is_false(lock:locked())
    end)
  end)

  it("is FIFO-fair, and a newcomer does not overtake woken waiters", function()
    run(function()
      local lock = aio.Lock()
      local order = {}
      lock:acquire()
      local ts = {}
      for i = 1, 5 do
        ts[i] = spawn(function()
          local _ <close> = lock:acquire()
          order[#order + 1] = i
          aio.sleep(0)
        end)
      end
      spin()
      assert.same({}, order)
      lock:release()
      -- asyncio: the lock is free but waiters are first in line
      ts[#ts + 1] = spawn(function()
        local _ <close> = lock:acquire()
        order[#order + 1] = "late"
      end)
      lock:acquire()              -- queues behind 2..5 (late starts later)
      order[#order + 1] = "main"
      lock:release()
      settle(ts)
      assert.same({ 1, 2, 3, 4, 5, "main", "late" }, order)
      assert.is_false(lock:locked())
    end)
  end)

  it("a waiter cancelled while it waits leaves; the others proceed in order", function()
    run(function()
      local lock = aio.Lock()
      local order = {}
      lock:acquire()
      local ts = {}
      for i = 1, 3 do
        ts[i] = spawn(function()
          local _ <close> = lock:acquire()
          order[#order + 1] = i
          aio.sleep(0)
        end)
      end
      spin()
      ts[2]:cancel()
      spin()
      assert.is_true(ts[2]:done())
      assert.is_true(ts[2]:cancelled())
      assert.is_true(lock:locked())
      lock:release()
      settle(ts)
      assert.same({ 1, 3 }, order)
      assert.is_false(lock:locked())
    end)
  end)

  it("a waiter cancelled after release() woke it passes the lock to the next", function()
    run(function()
      local lock = aio.Lock()
      local order = {}
      lock:acquire()
      local ts = {}
      for i = 1, 3 do
        ts[i] = spawn(function()
          local _ <close> = lock:acquire()
          order[#order + 1] = i
          aio.sleep(0)
        end)
      end
      spin()
      lock:release()       -- wakes 1 ...
      ts[1]:cancel()       -- ... which is cancelled before it runs
      settle(ts)
      assert.is_true(ts[1]:cancelled())
      assert.same({ 2, 3 }, order)
      assert.is_false(lock:locked())
    end)
  end)

  it("a woken-then-cancelled sole waiter leaves the lock free", function()
    run(function()
      local lock = aio.Lock()
      lock:acquire()
      local t = spawn(function() lock:acquire() end)
      spin()
      lock:release()
      t:cancel()
      settle({ t })
      assert.is_true(t:cancelled())
      assert.is_false(lock:locked())
      -- no stale wake-up: acquiring does not suspend
      local got = false
      local probe = spawn(function() aio.sleep(0); got = lock:locked() end)
      lock:acquire()
      assert.is_false(probe:done())
      lock:release()
      settle({ probe })
      assert.is_false(got)
    end)
  end)

  it("a newcomer queued behind a woken-then-cancelled waiter still gets the lock", function()
    run(function()
      local lock = aio.Lock()
      lock:acquire()
      local t = spawn(function() lock:acquire() end)
      spin()
      lock:release()
      t:cancel()
      lock:acquire()          -- must wait for t to hand the lock on
      assert.is_true(lock:locked())
      assert.is_true(t:cancelled())
      lock:release()
    end)
  end)

  it("a pending cancellation is raised at a blocked acquire; the lock is unaffected", function()
    run(function()
      local lock = aio.Lock()
      lock:acquire()
      local t = spawn(function()
        aio.current_task():cancel()
        lock:acquire()
        return "acquired"
      end)
      settle({ t })
      assert.is_true(t:cancelled())
      assert.is_true(lock:locked())
      lock:release()
      assert.is_false(lock:locked())
      lock:acquire()
      lock:release()
    end)
  end)

  it("acquire under wait_for times out without breaking the lock", function()
    run(function()
      local lock = aio.Lock()
      lock:acquire()
      local ok, err = pcall(aio.wait_for, function() return lock:acquire() end, 0.5)
      assert.is_false(ok)
      assert.is_true(aio.is(err, aio.TimeoutError))
      assert.is_true(lock:locked())
      local t = spawn(function() local _ <close> = lock:acquire(); return "got" end)
      spin()
      lock:release()
      assert.equal("got", t:await())
      assert.is_false(lock:locked())
    end, V)
  end)
end)

describe("loop binding", function()
  -- asyncio binds a primitive to a loop when it first waits on it
  local function park_and_free(wait, free)
    local t = spawn(wait)
    spin()
    free()
    settle({ t })
  end

  it("a Lock, Event, Condition or Semaphore waited on in one loop errors in another", function()
    local lock, ev, cond, sem = aio.Lock(), aio.Event(), aio.Condition(), aio.Semaphore(0)
    run(function()
      lock:acquire()
      park_and_free(function() lock:acquire(); lock:release() end, function() lock:release() end)
      park_and_free(function() ev:wait() end, function() ev:set() end)
      park_and_free(function() local _ <close> = cond:acquire(); cond:wait() end,
        function() cond:acquire(); cond:notify(); cond:release() end)
      park_and_free(function() sem:acquire() end, function() sem:release() end)
    end)
    run(function()
      lock:acquire()
      local t = spawn(function() return lock:acquire() end)
      settle({ t })
      assert.matches("loop", tostring(t:exception()), 1, true)
      lock:release()
      ev:clear()
      local ok, err = pcall(ev.wait, ev)
      assert.is_false(ok)
      assert.matches("loop", tostring(err), 1, true)
      cond:acquire()
      ok, err = pcall(cond.wait, cond)
      assert.is_false(ok)
      assert.matches("loop", tostring(err), 1, true)
      ok, err = pcall(sem.acquire, sem)
      assert.is_false(ok)
      assert.matches("loop", tostring(err), 1, true)
    end)
  end)
end)

------------------------------------------------------------------ Event
describe("Event", function()
  it("set/clear/is_set, and wait returns true at once when set", function()
    run(function()
      local ev = aio.Event()
      assert.is_false(ev:is_set())
      ev:set()
      assert.is_true(ev:is_set())
      assert.is_true(ev:wait())
      ev:set()
      assert.is_true(ev:is_set())
      ev:clear()
      assert.is_false(ev:is_set())
    end)
  end)

  it("wait outside a task needs a running task", function()
    run(function()
      local ev = aio.Event()
      ev:set()
      needs_task(ev.wait, ev)
    end)
  end)

  it("set() wakes every waiter, even if cleared at once", function()
    run(function()
      local ev = aio.Event()
      local got = {}
      local ts = {}
      for i = 1, 4 do
        ts[i] = spawn(function()
          local r = ev:wait()
          got[#got + 1] = { i, r }
        end)
      end
      spin()
      assert.same({}, got)
      ev:set()
      ev:clear()
      settle(ts)
      assert.same({ { 1, true }, { 2, true }, { 3, true }, { 4, true } }, got)
      assert.is_false(ev:is_set())
    end)
  end)

  it("a cancelled waiter does not stop the others", function()
    run(function()
      local ev = aio.Event()
      local got = {}
      local ts = {}
      for i = 1, 3 do
        ts[i] = spawn(function() ev:wait(); got[#got + 1] = i end)
      end
      spin()
      ts[2]:cancel()
      spin()
      assert.is_true(ts[2]:cancelled())
      ev:set()
      settle(ts)
      assert.same({ 1, 3 }, got)
    end)
  end)

  it("a waiter cancelled after set() woke it is cancelled; the others still run", function()
    run(function()
      local ev = aio.Event()
      local got = {}
      local ts = {}
      for i = 1, 3 do
        ts[i] = spawn(function() ev:wait(); got[#got + 1] = i end)
      end
      spin()
      ev:set()
      ts[1]:cancel()
      settle(ts)
      assert.is_true(ts[1]:cancelled())
      assert.same({ 2, 3 }, got)
    end)
  end)

  it("wait under wait_for times out; a later set still wakes a new waiter", function()
    run(function()
      local ev = aio.Event()
      local ok, err = pcall(aio.wait_for, function() return ev:wait() end, 1)
      assert.is_false(ok)
      assert.is_true(aio.is(err, aio.TimeoutError))
      local t = spawn(function() return ev:wait() end)
      spin()
      ev:set()
      assert.is_true(t:await())
    end, V)
  end)
end)

------------------------------------------------------------------ Condition
describe("Condition", function()
  it("acquire/release/locked delegate to its lock, own or given", function()
    run(function()
      local c = aio.Condition()
      assert.is_false(c:locked())
      assert.equal(c, c:acquire())
      assert.is_true(c:locked())
      c:release()
      assert.is_false(c:locked())
      do
        local _ <close> = c:acquire()
        assert.is_true(c:locked())
      end
      assert.is_false(c:locked())

      local lock = aio.Lock()
      local c2 = aio.Condition(lock)
      lock:acquire()
      assert.is_true(c2:locked())
      c2:release()
      assert.is_false(lock:locked())
    end)
  end)

  it("rejects a non-Lock argument", function()
    local ok, err = pcall(aio.Condition, "lock")
    assert.is_false(ok)
    assert.matches("Condition", tostring(err), 1, true)
  end)

  it("wait/notify/notify_all without the lock are clear errors", function()
    run(function()
      local c = aio.Condition()
      local ok, err = pcall(c.wait, c)
      assert.is_false(ok)
      assert.matches("wait", tostring(err), 1, true)
      ok, err = pcall(c.notify, c)
      assert.is_false(ok)
      assert.matches("notify", tostring(err), 1, true)
      ok, err = pcall(c.notify_all, c)
      assert.is_false(ok)
      assert.matches("notify_all", tostring(err), 1, true)
      ok, err = pcall(c.release, c)
      assert.is_false(ok)
      assert.matches("release: the Lock is not acquired", tostring(err), 1, true)
      assert.is_false(c:locked())
      -- a failed wait leaves nothing behind: a later wait/notify works
      local t = spawn(function()
        local _ <close> = c:acquire()
        return c:wait()
      end)
      spin()
      c:acquire(); c:notify(); c:release()
      assert.is_true(t:await())
    end)
  end)

  it("wait outside a task needs a running task", function()
    run(function()
      local c = aio.Condition()
      c:acquire()
      needs_task(c.wait, c)
      assert.is_true(c:locked())
      c:release()
    end)
  end)

  it("notify(n) wakes waiters FIFO, each holding the lock when wait returns", function()
    run(function()
      local c = aio.Condition()
      local order = {}
      local ts = {}
      for i = 1, 5 do
        ts[i] = spawn(function()
          local _ <close> = c:acquire()
          local r = c:wait()
          assert.is_true(c:locked())
          order[#order + 1] = { i, r }
          aio.sleep(0)       -- hold the lock across a suspension
        end)
      end
      spin()
      c:acquire()
      c:notify()             -- default 1
      c:release()
      spin(10)
      assert.same({ { 1, true } }, order)
      c:acquire()
      c:notify(2)
      c:release()
      spin(10)
      assert.same({ { 1, true }, { 2, true }, { 3, true } }, order)
      c:acquire()
      c:notify(0)
      c:release()
      spin(10)
      assert.equal(3, #order)
      c:acquire()
      c:notify_all()
      c:release()
      settle(ts)
      assert.same({ { 1, true }, { 2, true }, { 3, true }, { 4, true }, { 5, true } }, order)
      assert.is_false(c:locked())
    end)
  end)

  it("notify with more than the waiters, or with none, is harmless", function()
    run(function()
      local c = aio.Condition()
      c:acquire()
      c:notify(10)
      c:notify_all()
      c:release()
      local t = spawn(function() local _ <close> = c:acquire(); return c:wait() end)
      spin()
      c:acquire(); c:notify(100); c:release()
      assert.is_true(t:await())
    end)
  end)

  it("wait_for(pred) returns the predicate's value and re-checks after each wake-up", function()
    run(function()
      local c = aio.Condition()
      local value = 0
      local calls = 0
      local t = spawn(function()
        local _ <close> = c:acquire()
        return c:wait_for(function()
          calls = calls + 1
          return value >= 3 and ("v" .. value)
        end)
      end)
      spin()
      for _ = 1, 3 do
        c:acquire()
        value = value + 1
        c:notify_all()
        c:release()
        spin()
      end
      assert.equal("v3", t:await())
      assert.equal(4, calls)
      -- true at once: no wait
      c:acquire()
      assert.equal("x", c:wait_for(function() return "x" end))
      c:release()
    end)
  end)

  it("a waiter cancelled while it waits re-acquires the lock before raising", function()
    run(function()
      local c = aio.Condition()
      local held_in_handler
      local t = spawn(function()
        c:acquire()
        local ok, err = pcall(c.wait, c)
        held_in_handler = c:locked() and not ok and is_cancelled(err)
        c:release()
        error(err, 0)
      end)
      spin()
      c:acquire()          -- the waiter must wait for this lock to come back
      t:cancel()
      spin()
      assert.is_false(t:done())
      c:release()
      settle({ t })
      assert.is_true(t:cancelled())
      assert.is_true(held_in_handler)
      assert.is_false(c:locked())
    end)
  end)

  it("a waiter cancelled again while re-acquiring still holds the lock when it raises", function()
    run(function()
      local c = aio.Condition()
      local held_in_handler
      local t = spawn(function()
        c:acquire()
        local ok, err = pcall(c.wait, c)
        held_in_handler = c:locked() and not ok and is_cancelled(err)
        c:release()
        error(err, 0)
      end)
      spin()
      c:acquire()
      t:cancel()
      spin()               -- now parked on the lock
      t:cancel()
      spin()
      assert.is_false(t:done())
      c:release()
      settle({ t })
      assert.is_true(t:cancelled())
      assert.is_true(held_in_handler)
      assert.is_false(c:locked())
    end)
  end)

  it("a pending cancellation is raised at wait, with the lock held again", function()
    run(function()
      local c = aio.Condition()
      local held
      local t = spawn(function()
        c:acquire()
        aio.current_task():cancel()
        local ok, err = pcall(c.wait, c)
        held = c:locked() and not ok and is_cancelled(err)
        c:release()
        error(err, 0)
      end)
      settle({ t })
      assert.is_true(t:cancelled())
      assert.is_true(held)
      assert.is_false(c:locked())
    end)
  end)

  it("a waiter cancelled after notify() woke it passes the notification on", function()
    run(function()
      local c = aio.Condition()
      local woke = {}
      local ts = {}
      for i = 1, 3 do
        ts[i] = spawn(function()
          local _ <close> = c:acquire()
          c:wait()
          woke[#woke + 1] = i
        end)
      end
      spin()
      c:acquire()
      c:notify(1)          -- reaches 1 ...
      ts[1]:cancel()       -- ... which is cancelled before it runs
      c:release()
      spin(10)
      assert.is_true(ts[1]:cancelled())
      assert.same({ 2 }, woke)     -- not lost, and only one
      assert.is_false(ts[3]:done())
      c:acquire(); c:notify_all(); c:release()
      settle(ts)
      assert.same({ 2, 3 }, woke)
      assert.is_false(c:locked())
    end)
  end)

  it("producer/consumer on a shared lock counts every item", function()
    run(function()
      local c = aio.Condition(aio.Lock())
      local items, got = {}, {}
      local consumers = {}
      for i = 1, 3 do
        consumers[i] = spawn(function()
          while true do
            local _ <close> = c:acquire()
            c:wait_for(function() return #items > 0 end)
            local x = table.remove(items, 1)
            if x == "stop" then return end
            got[#got + 1] = x
          end
        end)
      end
      for i = 1, 30 do
        c:acquire()
        items[#items + 1] = i
        c:notify()
        c:release()
        if i % 4 == 0 then aio.sleep(0) end
      end
      for _ = 1, 3 do
        c:acquire()
        items[#items + 1] = "stop"
        c:notify()
        c:release()
      end
      settle(consumers)
      table.sort(got)
      local want = {}
      for i = 1, 30 do want[i] = i end
      assert.same(want, got)
    end)
  end)
end)

------------------------------------------------------------------ Semaphore
-- The semaphore's free permits: acquires until locked() (without
-- suspending), then gives them back.
local function permits(sem)
  local n = 0
  while not sem:locked() do
    sem:acquire()
    n = n + 1
    assert(n < 1000)
  end
  for _ = 1, n do sem:release() end
  return n
end

describe("Semaphore", function()
  it("defaults to one permit", function()
    run(function()
      local s = aio.Semaphore()
      assert.is_false(s:locked())
      assert.equal(s, s:acquire())
      assert.is_true(s:locked())
      s:release()
      assert.is_false(s:locked())
      do
        local _ <close> = s:acquire()
        assert.is_true(s:locked())
      end
      assert.is_false(s:locked())
    end)
  end)

  it("counts permits; release beyond the initial value is allowed", function()
    run(function()
      local s = aio.Semaphore(3)
      assert.equal(3, permits(s))
      s:acquire(); s:acquire(); s:acquire()
      assert.is_true(s:locked())
      s:release(); s:release(); s:release(); s:release()
      assert.equal(4, permits(s))
      local z = aio.Semaphore(0)
      assert.is_true(z:locked())
    end)
  end)

  it("rejects bad initial values", function()
    local ok, err = pcall(aio.Semaphore, -1)
    assert.is_false(ok)
    assert.matches("Semaphore", tostring(err), 1, true)
    ok, err = pcall(aio.Semaphore, "x")
    assert.is_false(ok)
    assert.matches("Semaphore", tostring(err), 1, true)
    ok, err = pcall(aio.BoundedSemaphore, -1)
    assert.is_false(ok)
    assert.matches("BoundedSemaphore: the initial value must be >= 0", tostring(err), 1, true)
  end)

  it("acquire outside a task needs a running task", function()
    run(function()
      local s = aio.Semaphore(2)
      needs_task(s.acquire, s)
      assert.equal(2, permits(s))
    end)
  end)

  it("limits concurrency to its value", function()
    run(function()
      local s = aio.Semaphore(2)
      local inside, max = 0, 0
      local ts = {}
      for i = 1, 6 do
        ts[i] = spawn(function()
          local _ <close> = s:acquire()
          inside = inside + 1
          if inside > max then max = inside end
          aio.sleep(0); aio.sleep(0)
          inside = inside - 1
        end)
      end
      settle(ts)
      assert.equal(2, max)
      assert.equal(2, permits(s))
    end)
  end)

  it("is FIFO-fair, and a newcomer does not overtake woken waiters", function()
    run(function()
      local s = aio.Semaphore(0)
      local order = {}
      local ts = {}
      for i = 1, 4 do
        ts[i] = spawn(function() s:acquire(); order[#order + 1] = i end)
      end
      spin()
      s:release()
      s:release()
      assert.is_true(s:locked())    -- both permits already handed out
      ts[5] = spawn(function() s:acquire(); order[#order + 1] = "late" end)
      spin()
      assert.same({ 1, 2 }, order)
      for _ = 1, 3 do s:release() end
      settle(ts)
      assert.same({ 1, 2, 3, 4, "late" }, order)
      assert.equal(0, permits(s))
    end)
  end)

  it("a newcomer waits behind a woken waiter even with a spare permit", function()
    run(function()
      local s = aio.Semaphore(0)
      local order = {}
      local a = spawn(function() s:acquire(); order[#order + 1] = "a" end)
      spin()
      s:release()          -- the permit goes to a (not yet running)
      s:release()          -- a spare permit
      -- asyncio: a woken waiter is still first in line, so locked()
      assert.is_true(s:locked())
      s:acquire()
      order[#order + 1] = "main"
      settle({ a })
      assert.same({ "a", "main" }, order)
      assert.equal(0, permits(s))
    end)
  end)

  it("a waiter cancelled while it waits loses no permit", function()
    run(function()
      local s = aio.Semaphore(0)
      local order = {}
      local ts = {}
      for i = 1, 3 do
        ts[i] = spawn(function() s:acquire(); order[#order + 1] = i end)
      end
      spin()
      ts[2]:cancel()
      spin()
      assert.is_true(ts[2]:cancelled())
      s:release()
      s:release()
      settle(ts)
      assert.same({ 1, 3 }, order)
      assert.equal(0, permits(s))
    end)
  end)

  it("a waiter cancelled after release() woke it gives the permit to the next", function()
    run(function()
      local s = aio.Semaphore(0)
      local order = {}
      local ts = {}
      for i = 1, 3 do
        ts[i] = spawn(function() s:acquire(); order[#order + 1] = i end)
      end
      spin()
      s:release()          -- hands the permit to 1 ...
      ts[1]:cancel()       -- ... cancelled before it runs
      spin(10)
      assert.is_true(ts[1]:cancelled())
      assert.same({ 2 }, order)
      assert.is_false(ts[3]:done())
      s:release()
      settle(ts)
      assert.same({ 2, 3 }, order)
      -- no permit lost, none created
      assert.equal(0, permits(s))
      s:release(); s:release()
      assert.equal(2, permits(s))
    end)
  end)

  it("a woken-then-cancelled sole waiter returns its permit", function()
    run(function()
      local s = aio.Semaphore(1)
      s:acquire()
      local t = spawn(function() s:acquire() end)
      spin()
      s:release()
      t:cancel()
      settle({ t })
      assert.is_true(t:cancelled())
      assert.equal(1, permits(s))
    end)
  end)

  it("several woken waiters cancelled at once lose no permit", function()
    run(function()
      local s = aio.Semaphore(0)
      local got = {}
      local ts = {}
      for i = 1, 5 do
        ts[i] = spawn(function() s:acquire(); got[#got + 1] = i end)
      end
      spin()
      s:release(); s:release(); s:release()   -- wakes 1, 2, 3
      ts[1]:cancel(); ts[3]:cancel()
      ts[5]:cancel()                           -- still waiting
      spin(10)
      -- three permits, two takers: one left over
      assert.same({ 2, 4 }, got)
      assert.equal(1, permits(s))
      settle(ts)
      assert.is_true(ts[1]:cancelled() and ts[3]:cancelled() and ts[5]:cancelled())
      s:release(); s:release()
      assert.equal(3, permits(s))
    end)
  end)

  it("acquire under wait_for times out without losing a permit", function()
    run(function()
      local s = aio.Semaphore(1)
      s:acquire()
      local ok, err = pcall(aio.wait_for, function() return s:acquire() end, 1)
      assert.is_false(ok)
      assert.is_true(aio.is(err, aio.TimeoutError))
      s:release()
      assert.equal(1, permits(s))
    end, V)
  end)
end)

describe("BoundedSemaphore", function()
  it("over-release is an error and changes nothing", function()
    run(function()
      local s = aio.BoundedSemaphore(2)
      local ok, err = pcall(s.release, s)
      assert.is_false(ok)
      assert.matches("release", tostring(err), 1, true)
      assert.equal(2, permits(s))
      s:acquire()
      s:release()
      local too_many = "release: BoundedSemaphore released too many times"
      assert.matches(too_many, H.errof(s.release, s), 1, true)
      assert.equal(2, permits(s))
      local d = aio.BoundedSemaphore()
      d:acquire()
      d:release()
      assert.matches(too_many, H.errof(d.release, d), 1, true)
    end)
  end)

  it("a woken-then-cancelled waiter neither loses nor adds a permit", function()
    run(function()
      local s = aio.BoundedSemaphore(1)
      s:acquire()
      local a = spawn(function() s:acquire() end)
      local b = spawn(function() local _ <close> = s:acquire(); aio.sleep(0) end)
      spin()
      s:release()
      a:cancel()
      settle({ a, b })
      assert.is_true(a:cancelled())
      assert.is_true(b:done() and not b:cancelled())
      assert.equal(1, permits(s))
      assert.matches("release: BoundedSemaphore released too many times",
        H.errof(s.release, s), 1, true)
    end)
  end)

  it("guards release through <close>", function()
    run(function()
      local s = aio.BoundedSemaphore(2)
      local ts = {}
      for i = 1, 4 do
        ts[i] = spawn(function()
          local _ <close> = s:acquire()
          aio.sleep(0)
          if i == 2 then error("fail", 0) end
        end)
      end
      settle(ts)
      assert.equal("fail", ts[2]:exception())
      assert.equal(2, permits(s))
    end)
  end)
end)

------------------------------------------------------------------ Barrier
describe("Barrier", function()
  it("rejects bad parties", function()
    for _, bad in ipairs { 0, -1, "3", 1.5 } do
      local ok, err = pcall(aio.Barrier, bad)
      assert.is_false(ok)
      assert.matches("Barrier", tostring(err), 1, true)
    end
    assert.matches("bad argument #1 to 'Barrier' (integer expected, got nil)",
      H.errof(aio.Barrier), 1, true)
  end)

  it("has parties, n_waiting and broken fields", function()
    local b = aio.Barrier(3)
    assert.equal(3, b.parties)
    assert.equal(0, b.n_waiting)
    assert.is_false(b.broken)
  end)

  it("wait outside a task needs a running task", function()
    run(function()
      local b = aio.Barrier(1)
      needs_task(b.wait, b)
      assert.equal(0, b.n_waiting)
    end)
  end)

  it("Barrier(1): wait returns 0 at once", function()
    run(function()
      local b = aio.Barrier(1)
      assert.equal(0, b:wait())
      assert.equal(0, b:wait())
      assert.equal(0, b.n_waiting)
    end)
  end)

  it("parties tasks get distinct indices 0..n-1, in arrival order; n_waiting counts", function()
    run(function()
      local n = 4
      local b = aio.Barrier(n)
      local idx, after = {}, {}
      local ts = {}
      for i = 1, n - 1 do
        ts[i] = spawn(function()
          idx[i] = b:wait()
          after[#after + 1] = i
        end)
      end
      spin()
      assert.equal(n - 1, b.n_waiting)
      assert.same({}, after)
      assert.is_false(b.broken)
      idx[n] = b:wait()   -- the last arrival passes
      assert.equal(0, b.n_waiting)   -- draining: nobody is waiting
      settle(ts)
      assert.same({ 0, 1, 2, 3 }, idx)
      assert.equal(n - 1, #after)
      assert.equal(0, b.n_waiting)
      assert.is_false(b.broken)
    end)
  end)

  it("is reusable round after round", function()
    run(function()
      local b = aio.Barrier(3)
      local rounds = {}
      local ts = {}
      for i = 1, 3 do
        ts[i] = spawn(function()
          for r = 1, 4 do
            local k = b:wait()
            rounds[r] = rounds[r] or {}
            rounds[r][#rounds[r] + 1] = k
            -- no one starts round r+1 before all left round r
          end
        end)
      end
      settle(ts)
      for r = 1, 4 do
        table.sort(rounds[r])
        assert.same({ 0, 1, 2 }, rounds[r])
      end
      assert.equal(0, b.n_waiting)
    end)
  end)

  it("n_waiting counts arrivals one by one", function()
    run(function()
      local b = aio.Barrier(3)
      local ts = {}
      ts[1] = spawn(function() return b:wait() end)
      spin()
      assert.equal(1, b.n_waiting)
      ts[2] = spawn(function() return b:wait() end)
      spin()
      assert.equal(2, b.n_waiting)
      ts[3] = spawn(function() return b:wait() end)
      settle(ts)
      assert.equal(0, b.n_waiting)
      local got = { ts[1]:result(), ts[2]:result(), ts[3]:result() }
      assert.same({ 0, 1, 2 }, got)
    end)
  end)

  it("abort() while tasks wait: all get BrokenBarrierError, broken stays true", function()
    run(function()
      local b = aio.Barrier(3)
      local ts = {}
      for i = 1, 2 do ts[i] = spawn(function() return b:wait() end) end
      spin()
      assert.equal(2, b.n_waiting)
      b:abort()
      assert.equal(0, b.n_waiting)
      assert.is_true(b.broken)
      settle(ts)
      for i = 1, 2 do
        assert.is_true(is_broken(ts[i]:exception()))
      end
      assert.is_true(b.broken)
      assert.equal(0, b.n_waiting)
      -- later callers fail at once
      local ok, err = pcall(b.wait, b)
      assert.is_false(ok)
      assert.is_true(is_broken(err))
      assert.is_true(aio.is(err, aio.Error))
      assert.is_true(b.broken)
      -- reset() repairs it
      b:reset()
      assert.is_false(b.broken)
      local t1 = spawn(function() return b:wait() end)
      local t2 = spawn(function() return b:wait() end)
      local k = b:wait()
      settle({ t1, t2 })
      local got = { t1:result(), t2:result(), k }
      table.sort(got)
      assert.same({ 0, 1, 2 }, got)
    end)
  end)

  it("reset() while tasks wait: they get BrokenBarrierError and it is usable again", function()
    run(function()
      local b = aio.Barrier(3)
      local ts = {}
      for i = 1, 2 do ts[i] = spawn(function() return b:wait() end) end
      spin()
      assert.equal(2, b.n_waiting)
      b:reset()
      assert.equal(0, b.n_waiting)   -- resetting
      assert.is_false(b.broken)
      settle(ts)
      for i = 1, 2 do
        assert.is_true(is_broken(ts[i]:exception()))
      end
      assert.is_false(b.broken)
      assert.equal(0, b.n_waiting)
      local us = {}
      for i = 1, 3 do us[i] = spawn(function() return b:wait() end) end
      settle(us)
      local got = { us[1]:result(), us[2]:result(), us[3]:result() }
      assert.same({ 0, 1, 2 }, got)
      assert.is_false(b.broken)
    end)
  end)

  it("after a reset, a new arrival starts a fresh round", function()
    run(function()
      local b = aio.Barrier(2)
      local old = spawn(function() return b:wait() end)
      spin()
      b:reset()
      local new = spawn(function() return b:wait() end)   -- arrives while resetting
      settle({ old })
      assert.is_true(is_broken(old:exception()))
      spin()
      assert.is_false(new:done())
      assert.equal(1, b.n_waiting)
      assert.equal(1, b:wait())
      assert.equal(0, new:await())
    end)
  end)

  it("a cancelled waiter leaves the count; the barrier still works", function()
    run(function()
      local b = aio.Barrier(3)
      local ts = {}
      for i = 1, 2 do ts[i] = spawn(function() return b:wait() end) end
      spin()
      assert.equal(2, b.n_waiting)
      ts[1]:cancel()
      settle({ ts[1] })
      assert.is_true(ts[1]:cancelled())
      assert.equal(1, b.n_waiting)
      assert.is_false(b.broken)
      ts[3] = spawn(function() return b:wait() end)
      spin()
      assert.equal(2, b.n_waiting)
      local k = b:wait()
      settle(ts)
      -- asyncio: the index is the count at arrival, so after a departure
      -- it may repeat; the party that completes the barrier gets parties-1
      assert.same({ 1, 1, 2 }, { ts[2]:result(), ts[3]:result(), k })
      assert.equal(0, b.n_waiting)
    end)
  end)

  it("the passing party's wake-up is not lost if a woken waiter is cancelled", function()
    run(function()
      local b = aio.Barrier(3)
      local ts = {}
      for i = 1, 2 do ts[i] = spawn(function() return b:wait() end) end
      spin()
      ts[3] = spawn(function() return b:wait() end)
      -- let the last party arrive and release the others, then cancel one
      -- of the woken before it has run
      aio.sleep(0)
      ts[1]:cancel()
      settle(ts)
      assert.equal(0, b.n_waiting)
      assert.is_false(b.broken)
      -- the barrier is filling again and usable
      local us = {}
      for i = 1, 3 do us[i] = spawn(function() return b:wait() end) end
      settle(us)
      local got = { us[1]:result(), us[2]:result(), us[3]:result() }
      table.sort(got)
      assert.same({ 0, 1, 2 }, got)
    end)
  end)
end)
