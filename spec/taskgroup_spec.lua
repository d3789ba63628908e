-- spec/taskgroup_spec.lua: aio.TaskGroup (scope and function forms) and
-- aio.ExceptionGroup split/subgroup (asyncio 3.13 taskgroups.py).
local aio = require "luaio"
local H = require "helper"

local V = { clock = "virtual" }

local function is_cancelled(err) return aio.is(err, aio.CancelledError) end
local function is_eg(err) return aio.is(err, aio.ExceptionGroup) end
local function pack(...) return { n = select("#", ...), ... } end

-- A child body: sleeps `delay`, then fails with `err` (or returns it).
local function fail_after(delay, err)
  return function() aio.sleep(delay); error(err, 0) end
end

-- Sleeps, recording into log whether it was cancelled.
local function sleeper(log, name, delay)
  return function()
    local ok, err = pcall(aio.sleep, delay)
    if not ok then
      log[#log + 1] = name .. " cancelled"
      error(err, 0)
    end
    log[#log + 1] = name .. " done"
    return name
  end
end

------------------------------------------------------------------ success
describe("TaskGroup scope", function()
  it("waits for every child when the scope closes", function()
    H.run(function()
      local t0 = aio.time()
      local a, b
      do
        local tg <close> = aio.TaskGroup()
        a = tg:create_task(function() aio.sleep(1); return "a" end)
        b = tg:create_task(function(x, y) aio.sleep(2); return x + y end, 40, 2)
        assert.is_false(a:done())
      end
      assert.is_true(a:done())
      assert.is_true(b:done())
      assert.equal("a", a:result())
      assert.equal(42, b:result())
      assert.near(2, aio.time() - t0, 1e-6)
    end, V)
  end)

  it("returns create_task's Task, started on the next pass", function()
    H.run(function()
      local tg <close> = aio.TaskGroup()
      local ran = false
      local t = tg:create_task(function() ran = true end)
      assert.is_true(aio.isfuture(t))
      assert.is_false(ran)
      aio.sleep(0)
      assert.is_true(ran)
    end)
  end)

  it("lets a child add children while the group is exiting", function()
    H.run(function()
      local log = {}
      do
        local tg <close> = aio.TaskGroup()
        tg:create_task(function()
          aio.sleep(1)
          tg:create_task(function() aio.sleep(1); log[#log + 1] = "grandchild" end)
          log[#log + 1] = "child"
        end)
      end
      assert.same({ "child", "grandchild" }, log)
    end, V)
  end)

  it("does not fail for a child cancelled on its own", function()
    H.run(function()
      local victim
      do
        local tg <close> = aio.TaskGroup()
        victim = tg:create_task(aio.sleep, 10)
        tg:create_task(function() aio.sleep(1); return "ok" end)
        aio.sleep(0.5)
        victim:cancel()
      end
      assert.is_true(victim:cancelled())
    end, V)
  end)

  it("closes with no children", function()
    H.run(function()
      do local _ <close> = aio.TaskGroup() end
      assert.same({ n = 0 }, pack(aio.TaskGroup(function() end)))
    end)
  end)
end)

describe("TaskGroup function form", function()
  it("returns the body's results, nils included, after every child finished", function()
    H.run(function()
      local t0 = aio.time()
      local child
      local arg = { "table arg" }
      local r = pack(aio.TaskGroup(function(tg, a, b, c)
        assert.equal(arg, a)
        assert.is_nil(b)
        child = tg:create_task(function() aio.sleep(3); return "child" end)
        return nil, a, c, nil
      end, arg, nil, 3))
      assert.same({ nil, arg, 3, nil, n = 4 }, r)
      assert.is_true(child:done())
      assert.near(3, aio.time() - t0, 1e-6)
    end, V)
  end)
end)

------------------------------------------------------------------ failures
describe("TaskGroup failures", function()
  it("cancels the siblings and the body when a child fails, then raises an ExceptionGroup", function()
    H.run(function()
      local t0 = aio.time()
      local log = {}
      local reached = false
      local e = setmetatable({}, { __tostring = function() return "child error" end })
      local ok, err = pcall(function()
        local tg <close> = aio.TaskGroup()
        tg:create_task(fail_after(1, e))
        tg:create_task(sleeper(log, "sibling", 10))
        local _, err2 = pcall(aio.sleep, 10)       -- the body is cancelled
        log[#log + 1] = "body " .. (is_cancelled(err2) and "cancelled" or "not cancelled")
        error(err2, 0)
      end)
      assert.is_false(ok)
      assert.is_true(is_eg(err))
      assert.is_true(aio.is(err, aio.Error))
      assert.equal(1, #err.exceptions)
      assert.equal(e, err.exceptions[1])         -- the error value unchanged
      table.sort(log)
      assert.same({ "body cancelled", "sibling cancelled" }, log)
      assert.is_false(reached)
      assert.near(1, aio.time() - t0, 1e-6)
      -- the body's cancellation was the group's own: nothing is left over
      assert.equal(0, aio.current_task():cancelling())
      aio.sleep(1)
    end, V)
  end)

  it("collects every child failure", function()
    H.run(function()
      local ok, err = pcall(aio.TaskGroup, function(tg)
        -- the three fail in the same pass, before the group can cancel them
        tg:create_task(function() error("one", 0) end)
        tg:create_task(function() error("two", 0) end)
        tg:create_task(function() error("three", 0) end)
      end)
      assert.is_false(ok)
      assert.is_true(is_eg(err))
      assert.same({ "one", "two", "three" }, err.exceptions)
    end)
  end)

  it("raises an ExceptionGroup of the body's error and cancels the children", function()
    H.run(function()
      local log = {}
      local child
      local ok, err = pcall(function()
        local tg <close> = aio.TaskGroup()
        child = tg:create_task(sleeper(log, "child", 10))
        aio.sleep(1)
        error("body failed", 0)
      end)
      assert.is_false(ok)
      assert.is_true(is_eg(err))
      assert.same({ "body failed" }, err.exceptions)
      assert.same({ "child cancelled" }, log)
      assert.is_true(child:cancelled())
    end, V)
  end)

  it("raises the body's error in the function form too", function()
    H.run(function()
      local ok, err = pcall(aio.TaskGroup, function(tg)
        tg:create_task(aio.sleep, 10)
        error("body", 0)
      end)
      assert.is_false(ok)
      assert.is_true(is_eg(err))
      assert.same({ "body" }, err.exceptions)
    end, V)
  end)

  it("collects an error in both a child and the body", function()
    H.run(function()
      local ok, err = pcall(function()
        local tg <close> = aio.TaskGroup()
        tg:create_task(fail_after(1, "child"))
        local ok2, err2 = pcall(aio.sleep, 10)   -- cancelled by the failure
        assert(not ok2 and is_cancelled(err2))
        error("body", 0)                          -- and fails while unwinding
      end)
      assert.is_false(ok)
      assert.is_true(is_eg(err))
      assert.same({ "child", "body" }, err.exceptions)
      assert.equal(0, aio.current_task():cancelling())
    end, V)
  end)

  it("waits for cancelled children to unwind before raising", function()
    H.run(function()
      local t0 = aio.time()
      local cleaned = false
      local ok, err = pcall(aio.TaskGroup, function(tg)
        tg:create_task(function()
          local _, e2 = pcall(aio.sleep, 10)
          aio.sleep(5)                 -- slow cleanup
          cleaned = true
          error(e2, 0)
        end)
        tg:create_task(fail_after(1, "boom"))
      end)
      assert.is_false(ok)
      assert.same({ "boom" }, err.exceptions)
      assert.is_true(cleaned)
      assert.near(6, aio.time() - t0, 1e-6)
    end, V)
  end)

  it("fails when a child errs after the body has left the scope", function()
    H.run(function()
      local log = {}
      local ok, err = pcall(aio.TaskGroup, function(tg)
        tg:create_task(sleeper(log, "long", 10))
        tg:create_task(fail_after(2, "late"))
        return "body done"
      end)
      assert.is_false(ok)
      assert.same({ "late" }, err.exceptions)
      assert.same({ "long cancelled" }, log)
    end, V)
  end)

  it("describes itself with tostring", function()
    H.run(function()
      local ok, err = pcall(aio.TaskGroup, function(tg)
        tg:create_task(function() error("x", 0) end)
        tg:create_task(function() error("y", 0) end)
      end)
      assert.is_false(ok)
      assert.matches("2 sub%-exceptions", tostring(err))
      assert.is_string(err.message)
    end)
  end)
end)

------------------------------------------------------------------ cancellation
describe("TaskGroup cancellation", function()
  it("cancels the children when the parent is cancelled from outside; CancelledError propagates after they unwind", function()
    H.run(function()
      local t0 = aio.time()
      local log = {}
      local parent = aio.create_task(function()
        local tg <close> = aio.TaskGroup()
        for i = 1, 2 do
          tg:create_task(function()
            local _, err = pcall(aio.sleep, 100)
            log[#log + 1] = "child" .. i .. " cancelled"
            aio.sleep(2)           -- cleanup that suspends
            log[#log + 1] = "child" .. i .. " cleaned"
            error(err, 0)
          end)
        end
        aio.sleep(100)
        log[#log + 1] = "body went on"
      end)
      aio.sleep(1)
      parent:cancel()
      local ok, err = pcall(parent.await, parent)
      assert.is_false(ok)
      assert.is_true(is_cancelled(err))
      assert.is_false(is_eg(err))
      assert.is_true(parent:cancelled())
      assert.same({ "child1 cancelled", "child2 cancelled", "child1 cleaned", "child2 cleaned" }, log)
      assert.near(3, aio.time() - t0, 1e-6)
    end, V)
  end)

  it("propagates CancelledError when the parent is cancelled while the scope waits", function()
    H.run(function()
      local log = {}
      local parent = aio.create_task(aio.TaskGroup, function(tg)
        tg:create_task(sleeper(log, "child", 100))
        return "body returned"          -- the scope now waits for the child
      end)
      aio.sleep(1)
      parent:cancel()
      local ok, err = pcall(parent.await, parent)
      assert.is_false(ok)
      assert.is_true(is_cancelled(err))
      assert.same({ "child cancelled" }, log)
    end, V)
  end)

  it("raises the ExceptionGroup and keeps the outside cancellation pending when both happen", function()
    H.run(function()
      -- asyncio 3.13: errors take priority over CancelledError, and the
      -- parent's outside cancel request is kept (uncancel + cancel).
      local got, cancelling_after
      local parent = aio.create_task(function()
        local _, err = pcall(function()
          local tg <close> = aio.TaskGroup()
          tg:create_task(function()
            pcall(aio.sleep, 100)
            error("failed while cancelled", 0)
          end)
          aio.sleep(100)
        end)
        got = err
        cancelling_after = aio.current_task():cancelling()
        aio.sleep(1)                  -- the kept request cancels this
        return "not reached"
      end)
      aio.sleep(1)
      parent:cancel()
      local ok, err = pcall(parent.await, parent)
      assert.is_true(is_eg(got))
      assert.same({ "failed while cancelled" }, got.exceptions)
      assert.equal(1, cancelling_after)
      assert.is_false(ok)
      assert.is_true(is_cancelled(err))
    end, V)
  end)

  it("turns into TimeoutError inside an expiring timeout scope", function()
    H.run(function()
      local log = {}
      local ok, err = pcall(aio.timeout, 1, function()
        local tg <close> = aio.TaskGroup()
        tg:create_task(sleeper(log, "a", 10))
        tg:create_task(sleeper(log, "b", 10))
      end)
      assert.is_false(ok)
      assert.is_true(aio.is(err, aio.TimeoutError))
      table.sort(log)
      assert.same({ "a cancelled", "b cancelled" }, log)
    end, V)
  end)
end)

------------------------------------------------------------------ nesting
describe("nested TaskGroups", function()
  it("run inner groups to completion inside outer ones", function()
    H.run(function()
      local t0 = aio.time()
      local r = aio.TaskGroup(function(outer)
        local inner_task = outer:create_task(aio.TaskGroup, function(inner)
          local a = inner:create_task(function() aio.sleep(1); return 1 end)
          local b = inner:create_task(function() aio.sleep(2); return 2 end)
          aio.sleep(0.5)
          return function() return a:result() + b:result() end
        end)
        local v = aio.TaskGroup(function(inner)
          local c = inner:create_task(function() aio.sleep(3); return 3 end)
          return c
        end)
        return v:result() + inner_task:await()()
      end)
      assert.equal(6, r)
      assert.near(3, aio.time() - t0, 1e-6)
    end, V)
  end)

  it("report an inner group's failure as a nested ExceptionGroup, cancelling the outer's children", function()
    H.run(function()
      local log = {}
      local ok, err = pcall(aio.TaskGroup, function(outer)
        outer:create_task(sleeper(log, "outer child", 100))
        aio.TaskGroup(function(inner)
          inner:create_task(sleeper(log, "inner child", 100))
          inner:create_task(fail_after(1, "deep"))
        end)
        log[#log + 1] = "outer body went on"
      end)
      assert.is_false(ok)
      assert.is_true(is_eg(err))
      assert.equal(1, #err.exceptions)
      local inner_eg = err.exceptions[1]
      assert.is_true(is_eg(inner_eg))
      assert.same({ "deep" }, inner_eg.exceptions)
      table.sort(log)
      assert.same({ "inner child cancelled", "outer child cancelled" }, log)
      assert.equal(0, aio.current_task():cancelling())
    end, V)
  end)

  it("keep a failure in an inner group from cancelling the outer group's body when caught", function()
    H.run(function()
      local r = aio.TaskGroup(function(outer)
        local sib = outer:create_task(function() aio.sleep(2); return "sibling" end)
        local ok, err = pcall(aio.TaskGroup, function(inner)
          inner:create_task(fail_after(1, "inner"))
        end)
        assert(not ok and is_eg(err))
        aio.sleep(0.5)               -- the outer body is not cancelled
        return sib
      end)
      assert.equal("sibling", r:result())
    end, V)
  end)
end)

------------------------------------------------------------------ misuse
describe("TaskGroup misuse", function()
  it("refuses create_task after the group has finished", function()
    H.run(function()
      local saved = aio.TaskGroup(function(tg) return tg end)
      local ran = false
      local ok, err = pcall(saved.create_task, saved, function() ran = true end)
      assert.is_false(ok)
      assert.is_string(err)
      assert.matches("create_task", err, 1, true)
      aio.sleep(0)
      assert.is_false(ran)
      local scoped
      do
        local tg <close> = aio.TaskGroup()
        scoped = tg
      end
      assert.matches("TaskGroup:create_task: the task group has finished",
        H.errof(scoped.create_task, scoped, function() ran = true end), 1, true)
      aio.sleep(0)
      assert.is_false(ran)
    end)
  end)

  it("refuses create_task while shutting down after a failure", function()
    H.run(function()
      local refused
      local ok, err = pcall(aio.TaskGroup, function(tg)
        tg:create_task(fail_after(0, "boom"))
        pcall(aio.sleep, 10)
        refused = H.errof(tg.create_task, tg, function() end)
      end)
      assert.is_false(ok)
      assert.is_true(is_eg(err), tostring(err))
      assert.equal("boom", err.exceptions[1])
      assert.matches("TaskGroup:create_task: the task group is shutting down",
        refused, 1, true)
    end, V)
  end)

  it("rejects a non-function body", function()
    H.run(function()
      local ok, err = pcall(aio.TaskGroup, 42)
      assert.is_false(ok)
      assert.matches("bad argument #1 to 'TaskGroup'", err, 1, true)
    end)
  end)

  it("needs a running task (a callback is not one)", function()
    H.run(function()
      local got
      aio.get_running_loop():call_soon(function() got = { pcall(aio.TaskGroup) } end)
      aio.sleep(0.01)
      assert.is_false(got[1])
      assert.matches("TaskGroup", got[2], 1, true)
    end)
  end)
end)

------------------------------------------------------------------ ExceptionGroup
describe("ExceptionGroup", function()
  -- all children fail in the same pass, so none is cancelled before failing
  local function flat(errs)
    local ok, err = pcall(aio.TaskGroup, function(tg)
      for _, e in ipairs(errs) do tg:create_task(function() error(e, 0) end) end
    end)
    assert(not ok and is_eg(err))
    return err
  end

  local function nested(errs, inner_errs)
    local inner = flat(inner_errs)
    local ok, err = pcall(aio.TaskGroup, function(tg)
      tg:create_task(function() error(inner, 0) end)
      for _, e in ipairs(errs) do tg:create_task(function() error(e, 0) end) end
    end)
    assert(not ok and is_eg(err))
    return err
  end

  it("splits by class into match and rest", function()
    H.run(function()
      local te = aio.TimeoutError()
      local oe = aio.InvalidStateError()
      local eg = flat({ te, "str", oe })
      local match, rest = eg:split(aio.TimeoutError)
      assert.is_true(is_eg(match))
      assert.is_true(is_eg(rest))
      assert.same({ te }, match.exceptions)
      assert.equal(te, match.exceptions[1])
      assert.same({ "str", oe }, rest.exceptions)
      assert.equal(eg.message, match.message)
      -- the group itself is left as it was
      assert.equal(3, #eg.exceptions)
    end)
  end)

  it("gives nil for an empty side", function()
    H.run(function()
      local eg = flat({ aio.TimeoutError(), aio.TimeoutError() })
      local match, rest = eg:split(aio.TimeoutError)
      assert.is_not_nil(match)
      assert.is_nil(rest)
      match, rest = eg:split(aio.InvalidStateError)
      assert.is_nil(match)
      assert.is_true(is_eg(rest))
      assert.equal(2, #rest.exceptions)
    end)
  end)

  it("matches subclasses, and never matches a string with a class", function()
    H.run(function()
      local te = aio.TimeoutError()
      local eg = flat({ te, "plain" })
      local match, rest = eg:split(aio.Error)
      -- the group is itself an aio.Error, so all of it matches (asyncio:
      -- eg.split(Exception) returns (eg, None))
      assert.equal(eg, match)
      assert.is_nil(rest)
      local m2, r2 = flat({ "a", "b" }):split(aio.TimeoutError)
      assert.is_nil(m2)
      assert.same({ "a", "b" }, r2.exceptions)
    end)
  end)

  it("splits nested groups recursively, keeping their shape", function()
    H.run(function()
      local te1, te2 = aio.TimeoutError(), aio.TimeoutError()
      local eg = nested({ "outer str", te2 }, { te1, "inner str" })
      assert.equal(3, #eg.exceptions)
      assert.is_true(is_eg(eg.exceptions[1]))
      local match, rest = eg:split(aio.TimeoutError)
      -- match: { {te1}, te2 }, rest: { {"inner str"}, "outer str" }
      assert.equal(2, #match.exceptions)
      assert.is_true(is_eg(match.exceptions[1]))
      assert.same({ te1 }, match.exceptions[1].exceptions)
      assert.equal(te2, match.exceptions[2])
      assert.equal(2, #rest.exceptions)
      assert.is_true(is_eg(rest.exceptions[1]))
      assert.same({ "inner str" }, rest.exceptions[1].exceptions)
      assert.equal("outer str", rest.exceptions[2])
    end)
  end)

  it("drops a nested group that ends up empty on one side", function()
    H.run(function()
      local te = aio.TimeoutError()
      local eg = nested({ "x" }, { te })
      local match, rest = eg:split(aio.TimeoutError)
      assert.equal(1, #match.exceptions)
      assert.same({ te }, match.exceptions[1].exceptions)
      assert.same({ "x" }, rest.exceptions)
    end)
  end)

  it("has subgroup return the matching part only", function()
    H.run(function()
      local te = aio.TimeoutError()
      local eg = flat({ "a", te })
      local sub = eg:subgroup(aio.TimeoutError)
      assert.is_true(is_eg(sub))
      assert.same({ te }, sub.exceptions)
      assert.is_nil(eg:subgroup(aio.InvalidStateError))
      assert.is_nil(select(2, eg:subgroup(aio.InvalidStateError)))
    end)
  end)

  it("accepts a predicate as well as a class", function()
    H.run(function()
      local eg = flat({ "keep", "drop", "keep" })
      local match, rest = eg:split(function(e) return e == "keep" end)
      assert.same({ "keep", "keep" }, match.exceptions)
      assert.same({ "drop" }, rest.exceptions)
      assert.same({ "drop" }, eg:subgroup(function(e) return e == "drop" end).exceptions)
    end)
  end)

  it("is caught by aio.is as an ExceptionGroup and an Error, not a CancelledError", function()
    H.run(function()
      local eg = flat({ "x" })
      assert.is_true(aio.is(eg, aio.ExceptionGroup))
      assert.is_true(aio.is(eg, aio.Error))
      assert.is_false(aio.is(eg, aio.CancelledError))
    end)
  end)
end)
