-- spec/coroutine_spec.lua: user coroutines inside tasks (SPEC.md
-- "Cancellation", the coroutine paragraph, and "Scheduling discipline",
-- where a suspension cannot reach the scheduler).
--
-- luaio's coroutine.resume/wrap/yield/close/isyieldable behave exactly like
-- Lua's for every yield that is not luaio's and carry luaio suspensions
-- (aio.sleep, await, ...) to the scheduler and back.
local aio = require "luaio"
local H = require "helper"

local VIRTUAL = { clock = "virtual" }

local function closer(fn)
  return setmetatable({}, { __close = fn })
end

local function pack(...) return { n = select("#", ...), ... } end

local C_BOUNDARY = "attempt to yield across a C-call boundary"

describe("luaio's coroutine functions", function()
  it("are installed in the global coroutine table and in aio.coroutine", function()
    assert.is_table(aio.coroutine)
    for _, k in ipairs { "resume", "wrap", "yield", "close", "status",
                         "isyieldable", "create", "running" } do
      assert.is_function(aio.coroutine[k], k)
      assert.equal(aio.coroutine[k], coroutine[k], k)
    end
  end)

  it("behave like Lua's for plain coroutines (no task involved)", function()
    local co = coroutine.create(function(a, b)
      local c = coroutine.yield(a + b, "y")
      local d, e = coroutine.yield(c * 2)
      return d, e, coroutine.isyieldable()
    end)
    assert.equal("suspended", coroutine.status(co))
    assert.same({ true, 3, "y" }, { coroutine.resume(co, 1, 2) })
    assert.same({ true, 10 }, { coroutine.resume(co, 5) })
    assert.same({ n = 4, true, "d", nil, true }, pack(coroutine.resume(co, "d", nil)))
    assert.equal("dead", coroutine.status(co))
    assert.same({ false, "cannot resume dead coroutine" }, { coroutine.resume(co) })

    local gen = coroutine.wrap(function() for i = 1, 3 do coroutine.yield(i) end end)
    assert.same({ 1, 2, 3 }, { gen(), gen(), gen() })

    local closed = false
    local c2 = coroutine.create(function()
      local _ <close> = closer(function() closed = true end)
      coroutine.yield()
    end)
    coroutine.resume(c2)
    assert.same({ true }, { coroutine.close(c2) })
    assert.is_true(closed)
    assert.equal("dead", coroutine.status(c2))
  end)

  it("keep Lua's wrap error rule: a string error gets the caller's position", function()
    local gen = coroutine.wrap(function() error("inner", 0) end)
    local ok, err = pcall(function() local r = gen(); return r end)
    assert.is_false(ok)
    assert.matches("^[^\n]*coroutine_spec%.lua:%d+: inner$", err)
    local e = {}
    ok, err = pcall(coroutine.wrap(function() error(e) end))
    assert.is_false(ok)
    assert.equal(e, err)
  end)

  it("keep Lua's C-boundary rule for plain yields inside a task", function()
    H.run(function()
      local gen = coroutine.wrap(function()
        string.gsub("x", "x", function() coroutine.yield(1) end)
      end)
      local ok, err = pcall(gen)
      assert.is_false(ok)
      assert.matches(C_BOUNDARY, err, 1, true)
    end)
  end)
end)

describe("a user coroutine inside a task", function()
  it("may call aio.sleep, and its own yields still reach the consumer", function()
    local got, dt = H.run(function()
      local function ticker(n, delay)
        return coroutine.wrap(function()
          for i = 1, n do
            aio.sleep(delay)
            coroutine.yield(i, aio.time())
          end
        end)
      end
      local t0 = aio.time()
      local got = {}
      for i, t in ticker(3, 1) do got[#got + 1] = { i, t - t0 } end
      return got, aio.time() - t0
    end, VIRTUAL)
    assert.equal(3, #got)
    for i = 1, 3 do
      assert.equal(i, got[i][1])
      assert.is_true(got[i][2] >= i - 1e-6, "tick " .. i .. " came early")
    end
    assert.is_true(dt >= 3 - 1e-6)
  end)

  it("passes values both ways across a luaio suspension (resume form)", function()
    H.run(function()
      local co = coroutine.create(function(a)
        assert.equal("running", coroutine.status(coroutine.running()))
        local b = coroutine.yield(a + 1)
        assert.equal(9, aio.sleep(0.5, 9))
        local c = coroutine.yield(b * 2)
        aio.sleep(0)
        return c .. "!"
      end)
      assert.same({ true, 2 }, { coroutine.resume(co, 1) })
      assert.equal("suspended", coroutine.status(co))
      assert.same({ true, 10 }, { coroutine.resume(co, 5) })
      assert.same({ true, "x!" }, { coroutine.resume(co, "x") })
      assert.equal("dead", coroutine.status(co))
      assert.same({ false, "cannot resume dead coroutine" }, { coroutine.resume(co) })
    end, VIRTUAL)
  end)

  it("keeps nils and the count of yielded and returned values", function()
    H.run(function()
      local co = coroutine.create(function()
        aio.sleep(0)
        local r = pack(coroutine.yield(nil, 2, nil))
        aio.sleep(0)
        return r.n, nil
      end)
      local r = pack(coroutine.resume(co))
      assert.equal(4, r.n)
      assert.same({ n = 4, true, nil, 2, nil }, r)
      r = pack(coroutine.resume(co, nil, nil, nil))
      assert.same({ n = 3, true, 3, nil }, r)
    end)
  end)

  it("reports errors raised after a suspension like Lua does", function()
    H.run(function()
      local e = { why = "bad" }
      local closed = false
      local co = coroutine.create(function()
        local _ <close> = closer(function() closed = true end)
        aio.sleep(0)
        error(e)
      end)
      local ok, err = coroutine.resume(co)
      assert.is_false(ok)
      assert.equal(e, err)
      assert.equal("dead", coroutine.status(co))
      assert.is_false(closed)            -- as in Lua: closed by coroutine.close
      assert.same({ false, e }, { coroutine.close(co) })
      assert.is_true(closed)

      local gen = coroutine.wrap(function()
        local _ <close> = closer(function() closed = "wrap" end)
        aio.sleep(0)
        error(e)
      end)
      ok, err = pcall(gen)
      assert.is_false(ok)
      assert.equal(e, err)
      assert.equal("wrap", closed)   -- wrap closes the dead coroutine
    end)
  end)

  it("works nested two deep, with yields at both levels", function()
    local out = H.run(function()
      local inner = coroutine.wrap(function()
        for i = 1, 2 do aio.sleep(0.25); coroutine.yield("in" .. i) end
      end)
      local outer = coroutine.wrap(function()
        for _ = 1, 2 do
          local v = inner()
          aio.sleep(0.25)
          coroutine.yield("out(" .. v .. ")")
        end
      end)
      return { outer(), outer() }
    end, VIRTUAL)
    assert.same({ "out(in1)", "out(in2)" }, out)
  end)

  it("does not block other tasks while it is suspended in luaio", function()
    local total = H.run(function()
      local t0 = aio.time()
      local function consume()
        local gen = coroutine.wrap(function()
          for i = 1, 3 do aio.sleep(1); coroutine.yield(i) end
        end)
        local s = 0
        for v in gen do s = s + v end
        return s
      end
      local a = aio.create_task(consume)
      local b = aio.create_task(consume)
      assert.equal(6, a:await())
      assert.equal(6, b:await())
      return aio.time() - t0
    end, VIRTUAL)
    assert.is_true(total < 4, "generators ran one after the other: " .. total)
  end)

  it("sees aio.current_task() as the task that resumed it", function()
    H.run(function()
      local me = aio.current_task()
      local co = coroutine.wrap(function()
        local a = aio.current_task()
        aio.sleep(0)
        local b = aio.current_task()
        local nested = coroutine.wrap(function()
          aio.sleep(0)
          return aio.current_task()
        end)()
        return a, b, nested
      end)
      local a, b, c = co()
      assert.equal(me, a); assert.equal(me, b); assert.equal(me, c)

      -- a coroutine created by one task and resumed by another sees the other
      local shared = coroutine.create(function()
        while true do
          aio.sleep(0)
          coroutine.yield(aio.current_task())
        end
      end)
      assert.same({ true, me }, { coroutine.resume(shared) })
      local other
      other = aio.create_task(function() return select(2, coroutine.resume(shared)) end)
      assert.equal(other, other:await())
    end)
  end)

  it("coroutine.running() inside it is the user coroutine, not the task's", function()
    H.run(function()
      local task_co = coroutine.running()
      local co
      co = coroutine.create(function()
        aio.sleep(0)
        local c, ismain = coroutine.running()
        return c == co, c ~= task_co, ismain
      end)
      assert.same({ true, true, true, false }, { coroutine.resume(co) })
    end)
  end)

  it("coroutine.isyieldable() is true in a task body and inside a user coroutine", function()
    H.run(function()
      assert.is_true(coroutine.isyieldable())
      assert.is_true(coroutine.wrap(function()
        aio.sleep(0)
        return coroutine.isyieldable()
      end)())
    end)
  end)

  it("cannot be resumed or closed by another task while it waits in luaio", function()
    H.run(function()
      local co = coroutine.create(function() aio.sleep(0.02); return "finished" end)
      local owner = aio.create_task(function() return coroutine.resume(co) end)
      aio.sleep(0)   -- owner starts and co suspends in aio.sleep
      local ok, err = coroutine.resume(co)
      assert.is_false(ok)
      assert.matches("cannot resume a coroutine that is waiting in luaio", err, 1, true)
      assert.matches("cannot close a coroutine that is waiting in luaio",
        H.errof(coroutine.close, co), 1, true)
      -- the owner is undisturbed and gets the coroutine's own result
      assert.same({ true, "finished" }, { owner:await() })
    end)
  end)
end)

describe("cancelling a task while it is suspended inside a user coroutine", function()
  it("raises CancelledError at the inner suspension point (resume returns false, err)", function()
    H.run(function()
      local res = {}
      local t = aio.create_task(function()
        local co = coroutine.create(function()
          local _ <close> = closer(function() res.closed = true end)
          aio.sleep(10)
          res.after = true
        end)
        res.ok, res.err = coroutine.resume(co)
        res.status = coroutine.status(co)
        res.closed_by_resume = res.closed   -- Lua: only coroutine.close runs them
        res.close = { coroutine.close(co) }
        error(res.err, 0)
      end)
      aio.sleep(0)
      assert.is_true(t:cancel("stop"))
      local ok, err = pcall(t.await, t)
      assert.is_false(ok)
      assert.is_true(aio.is(err, aio.CancelledError))
      assert.is_true(t:cancelled())
      assert.is_false(res.ok)
      assert.is_true(aio.is(res.err, aio.CancelledError))
      assert.equal("stop", res.err.message)
      assert.equal("dead", res.status)
      assert.is_nil(res.closed_by_resume)
      assert.same({ false, res.err }, res.close)
      assert.is_true(res.closed)
      assert.is_nil(res.after)
    end)
  end)

  it("makes wrap re-raise the CancelledError, cancelling the task", function()
    H.run(function()
      local closed = false
      local t = aio.create_task(function()
        local gen = coroutine.wrap(function()
          local _ <close> = closer(function() closed = true end)
          aio.sleep(10)
        end)
        gen()
        return "not reached"
      end)
      aio.sleep(0)
      t:cancel()
      local err = H.errof(t.await, t)
      assert.is_true(aio.is(err, aio.CancelledError), tostring(err))
      assert.is_true(t:cancelled())
      assert.is_true(closed)
    end)
  end)

  it("reaches the innermost of nested coroutines; cleanup may still suspend", function()
    H.run(function()
      local log = {}
      local t = aio.create_task(function()
        local outer = coroutine.wrap(function()
          local inner = coroutine.wrap(function()
            local _ <close> = closer(function() log[#log + 1] = "inner closed" end)
            aio.sleep(10)
          end)
          local ok, err = pcall(inner)
          log[#log + 1] = aio.is(err, aio.CancelledError) and "outer caught" or tostring(ok)
          aio.sleep(0)          -- edge-triggered: suspending again is fine
          log[#log + 1] = "outer slept"
          error(err, 0)
        end)
        outer()
      end)
      aio.sleep(0)
      t:cancel()
      local err = H.errof(t.await, t)
      assert.is_true(aio.is(err, aio.CancelledError), tostring(err))
      assert.is_true(t:cancelled())
      assert.same({ "inner closed", "outer caught", "outer slept" }, log)
    end)
  end)

  it("lets the task swallow it and carry on (edge-triggered)", function()
    H.run(function()
      local t = aio.create_task(function()
        local ok, err = pcall(coroutine.wrap(function() aio.sleep(10) end))
        assert(not ok and aio.is(err, aio.CancelledError))
        aio.current_task():uncancel()
        aio.sleep(0.001)
        return "recovered"
      end)
      aio.sleep(0)
      t:cancel()
      assert.equal("recovered", t:await())
    end)
  end)
end)

describe("misusing coroutines in a task", function()
  it("coroutine.yield in a task body raises an error suggesting aio.sleep(0)", function()
    H.run(function()
      local ok, err = pcall(coroutine.yield, 1)
      assert.is_false(ok)
      assert.matches("aio.sleep(0)", err, 1, true)
      -- also from a function called by the body, outside any user coroutine
      local function helper() coroutine.yield("x") end
      ok, err = pcall(helper)
      assert.is_false(ok)
      assert.matches("aio.sleep(0)", err, 1, true)
      -- the task is fine afterwards
      assert.equal("ok", aio.sleep(0, "ok"))
    end)
  end)

  it("coroutine.yield in a non-main task body raises too", function()
    H.run(function()
      local t = aio.create_task(function() coroutine.yield(1) end)
      local ok, err = pcall(t.await, t)
      assert.is_false(ok)
      assert.matches("aio.sleep(0)", err, 1, true)
    end)
  end)

  it("resuming a suspended task's coroutine returns false, err; close errors", function()
    H.run(function()
      local t = aio.create_task(function() aio.sleep(0.01); return "done" end)
      aio.sleep(0)
      local co = t:get_coro()
      assert.equal("thread", type(co))
      local ok, err = coroutine.resume(co)
      assert.is_false(ok)
      assert.matches("cannot resume a coroutine that is waiting in luaio", err, 1, true)
      ok, err = pcall(coroutine.close, co)
      assert.is_false(ok)
      assert.matches("cannot close a coroutine that is waiting in luaio", err, 1, true)
      -- the task was not disturbed
      assert.equal("done", t:await())
    end)
  end)

  it("resuming the running task's own coroutine returns Lua's error", function()
    H.run(function()
      assert.same({ false, "cannot resume non-suspended coroutine" },
        { coroutine.resume(coroutine.running()) })
    end)
  end)

  it("a suspension in a coroutine resumed from a callback fails (not a task)", function()
    H.run(function()
      local f = aio.Future()
      aio.get_running_loop():call_soon(function()
        f:set_result(coroutine.resume(coroutine.create(function() aio.sleep(0) end)))
      end)
      local ok, err = f:await()
      assert.is_false(ok)
      assert.matches("sleep", err, 1, true)
    end)
  end)
end)

describe("a luaio suspension that cannot reach the scheduler", function()
  local function check(err, name)
    assert.is_string(err)
    assert.are_not.equal(C_BOUNDARY, err)
    assert.matches(name, err, 1, true)
  end

  it("fails in a string.gsub callback with an error naming 'gsub'", function()
    H.run(function()
      local ok, err = pcall(string.gsub, "x", "x", function() aio.sleep(0) end)
      assert.is_false(ok)
      check(err, "gsub")
      ok, err = pcall(function() return ("abc"):gsub("%w", function(c) aio.sleep(0); return c end) end)
      assert.is_false(ok)
      check(err, "gsub")
      assert.equal("still fine", aio.sleep(0, "still fine"))
    end)
  end)

  it("fails in a table.sort comparator with an error naming 'sort'", function()
    H.run(function()
      local ok, err = pcall(table.sort, { 3, 1, 2 }, function(a, b) aio.sleep(0); return a < b end)
      assert.is_false(ok)
      check(err, "sort")
      assert.equal("still fine", aio.sleep(0, "still fine"))
    end)
  end)

  it("fails in a __tostring called by tostring with an error naming 'tostring'", function()
    H.run(function()
      local v = setmetatable({}, { __tostring = function() aio.sleep(0); return "v" end })
      local ok, err = pcall(tostring, v)
      assert.is_false(ok)
      check(err, "tostring")
      assert.equal("still fine", aio.sleep(0, "still fine"))
    end)
  end)

  it("fails in a load reader with an error naming 'load'", function()
    H.run(function()
      local f, err = load(function() aio.sleep(0); return nil end)
      assert.is_nil(f)
      check(err, "load")
    end)
  end)

  it("fails the same way inside a user coroutine in a task", function()
    H.run(function()
      local ok, err = coroutine.resume(coroutine.create(function()
        string.gsub("x", "x", function() aio.sleep(0) end)
      end))
      assert.is_false(ok)
      check(err, "gsub")
      ok, err = pcall(coroutine.wrap(function()
        table.sort({ 2, 1 }, function(a, b) aio.sleep(0); return a < b end)
      end))
      assert.is_false(ok)
      check(err, "sort")
    end)
  end)

  it("leaves the task cancellable and the loop clean", function()
    H.run(function()
      local t = aio.create_task(function()
        pcall(string.gsub, "x", "x", function() aio.sleep(0) end)
        aio.sleep(10)
      end)
      aio.sleep(0)
      t:cancel()
      local err = H.errof(t.await, t)
      assert.is_true(aio.is(err, aio.CancelledError), tostring(err))
      assert.is_true(t:cancelled())
    end)
  end)
end)
