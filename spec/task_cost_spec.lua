-- spec/task_cost_spec.lua: what the cheap paths of a task's life must keep
-- (issue 24): a gather counts a child that ends with results at its end,
-- without a callback, unless it is the last; a task's coroutine starts as
-- task_main(msgh, fn, ...); the Task object outlives its pooled coroutine.
local aio = require "luaio"
local H = require "helper"

local V = { clock = "virtual" }

-- A task that yields k times, then returns value or raises it.
local function yields(k, value, fail)
  return aio.create_task(function()
    for _ = 1, k do aio.sleep(0) end
    if fail then error(value, 0) end
    return value
  end)
end

describe("gather counting children as they end", function()
  it("settles once the last child is done, children ending over several passes", function()
    H.run(function()
      local ts = {}
      for i = 1, 50 do ts[i] = yields(i % 5, i) end
      local r = aio.gather(ts)
      assert.equal(50, r.n)
      for i = 1, 50 do assert.equal(i, r[i]) end
    end, V)
  end)

  it("raises a child's error as soon as it fails, while the others still run", function()
    H.run(function()
      local slow = yields(10, "slow")
      local ok, err = pcall(aio.gather, { yields(0, "a"), yields(1, "boom", true), slow, yields(0, "b") })
      assert.is_false(ok)
      assert.equal("boom", err)
      assert.is_false(slow:done())
      assert.equal("slow", slow:await())
    end, V)
  end)

  it("counts a failed child and the results after it (return_exceptions)", function()
    H.run(function()
      -- the failed child's callback runs after later children were counted
      local r = aio.gather({ yields(1, "e", true), yields(1, 2), yields(3, 3), yields(0, 4) },
        { return_exceptions = true })
      assert.same({ "e", 2, 3, 4, n = 4 }, r)
    end, V)
  end)

  it("waits for a child cancelled after the others are counted", function()
    H.run(function()
      local stuck = aio.create_task(function() aio.sleep(math.huge) end)
      local g = aio.create_task(function()
        return aio.gather({ yields(0, 1), stuck, yields(1, 3) }, { return_exceptions = true })
      end)
      aio.sleep(0); aio.sleep(0); aio.sleep(0)
      assert.is_false(g:done())
      stuck:cancel("stop")
      local r = g:await()
      assert.equal(1, r[1])
      assert.is_true(aio.is(r[2], aio.CancelledError))
      assert.equal(3, r[3])
    end, V)
  end)

  it("keeps a child's other done callbacks, and a child listed twice", function()
    H.run(function()
      local seen = {}
      local t = yields(1, "x")
      t:add_done_callback(function(d) seen[#seen + 1] = d:result() end)
      local r = aio.gather({ t, yields(0, "y"), t })
      assert.same({ "x", "y", "x", n = 3 }, r)
      aio.sleep(0)
      assert.same({ "x" }, seen)
    end, V)
  end)

  it("takes children done before the gather started", function()
    H.run(function()
      local a, b = yields(0, "a"), yields(0, "b")
      aio.sleep(0); aio.sleep(0)
      assert.is_true(a:done() and b:done())
      assert.same({ "a", "c", "b", n = 3 }, aio.gather({ a, yields(2, "c"), b }))
    end, V)
  end)

  it("lets the children go once it is done (no callback left on them)", function()
    H.run(function()
      local ts = {}
      for i = 1, 3 do ts[i] = yields(1, i) end
      aio.gather(ts)
      -- a callback added now is the first one again: it runs alone
      local n = 0
      ts[1]:add_done_callback(function() n = n + 1 end)
      aio.sleep(0)
      assert.equal(1, n)
      assert.equal(0, ts[1]:remove_done_callback(print))
    end, V)
  end)
end)

describe("a task on a reused coroutine", function()
  it("starts clean: no hook, no leftovers of the task before it", function()
    H.run(function()
      local co1
      local t1 = aio.create_task(function()
        co1 = coroutine.running()
        debug.sethook(co1, function() end, "l")
        return 1
      end)
      t1:await()
      local hook, co2, own = "unset", nil, nil
      local t2 = aio.create_task(function(...)
        co2 = coroutine.running()
        own = aio.current_task():get_coro()
        hook = debug.gethook()
        return select("#", ...), ...
      end, "a", nil)
      assert.same({ 2, "a", nil }, { t2:await() })
      assert.is_nil(hook)
      assert.equal(1, t1:result())       -- the first task is intact
      assert.is_nil(t1:get_coro())
      assert.equal(co1, co2)             -- (it ran on the same coroutine)
      assert.equal(co2, own)             -- get_coro names it while it runs
    end, V)
  end)

  it("reports a failure with the body's traceback, then serves the next task", function()
    H.run(function()
      local t = aio.create_task(function() aio.sleep(0); error("bad", 0) end)
      local ok, err = pcall(t.await, t)
      assert.is_false(ok)
      assert.equal("bad", err)
      assert.matches("task_cost_spec", t:get_stack())
      assert.equal(7, aio.create_task(function() aio.sleep(0); return 7 end):await())
    end, V)
  end)

  it("keeps an ended task whole while it is referenced, through many reuses", function()
    H.run(function()
      local kept = {}
      for wave = 1, 20 do
        local ts = {}
        for j = 1, 100 do ts[j] = yields(1, wave * 1000 + j) end
        aio.gather(ts)
        kept[wave] = ts[wave]
        collectgarbage()
      end
      for wave = 1, 20 do
        assert.is_true(kept[wave]:done())
        assert.equal(wave * 1000 + wave, kept[wave]:result())
        assert.matches("^Task 'Task%-%d+': done", tostring(kept[wave]))
      end
    end, V)
  end)
end)
