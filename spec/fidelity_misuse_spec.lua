-- spec/fidelity_misuse_spec.lua: TaskGroup and timeout misuse (issue 23),
-- asyncio's "has already been entered", "is finished", "Cannot change
-- state" in Lua's spelling, and the timeout states in asyncio's words.
local aio = require "luaio"
local H = require "helper"

local run = H.guarded
local settle = H.settle

local function spawn(f, ...) return aio.create_task(f, ...) end
local is_cancelled = H.is_cancelled

local await_err = H.await_err

local V = { clock = "virtual" }

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

  it("create_task with something not callable: the caller's line, nothing spawned", function()
    run(function()
      aio.TaskGroup(function(tg)
        local before = #aio.all_tasks()
        local ok, err = pcall(function() tg:create_task(42) end)
        assert.is_false(ok)
        assert.matches("^[^:]*fidelity_misuse_spec%.lua:%d+: bad argument #1 to "
          .. "'create_task' %(function expected, got number%)$", err)
        assert.equal(before, #aio.all_tasks())
        local called = false
        tg:create_task(setmetatable({}, { __call = function() called = true end }))
        aio.sleep(0)
        assert.is_true(called)
      end)
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
