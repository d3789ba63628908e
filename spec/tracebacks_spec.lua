-- Where errors come from: tracebacks across awaits, and debug reports
-- about handles left open.
local aio = require "luaio"
local H = require "helper"

describe("tracebacks", function()
  it("a task failing with an error it awaited shows where it was raised, through every await", function()
    local path = H.script([[
local aio = require "luaio"
local function inner() aio.sleep(0) error("deep failure") end
local function middle()
  local t = aio.create_task(inner)
  t:set_name("inner-task")
  return t:await()
end
aio.create_task(middle):await()
]])
    local r = H.cli({ path })
    os.remove(path)
    assert.equal(1, r.status)
    assert.matches("deep failure", r.stderr, 1, true)
    local a = r.stderr:find("came from task 'Task%-%d+'")
    local b = r.stderr:find("came from task 'inner-task'", 1, true)
    assert.is_truthy(a and b and a < b, r.stderr)
    assert.matches("in function 'error'", r.stderr, 1, true)
  end)

  it("get_stack of the awaiting task includes the awaited task's traceback", function()
    H.run(function()
      local t = aio.create_task(function()
        local child = aio.create_task(function() error("boom", 0) end)
        child:set_name("child")
        aio.sleep(0)
        child:await()
      end)
      local ok, err = pcall(t.await, t)
      assert.is_false(ok)
      assert.equal("boom", err)                 -- the value is unchanged
      local stack = t:get_stack()
      assert.matches("came from task 'child'", stack, 1, true)
    end)
  end)

  it("a caught error leaves no stale chain on a later, different error", function()
    H.run(function()
      local t = aio.create_task(function()
        local child = aio.create_task(function() error("first", 0) end)
        aio.sleep(0)
        pcall(child.await, child)
        error("second", 0)
      end)
      pcall(t.await, t)
      assert.not_matches("came from", t:get_stack(), 1, true)
    end)
  end)

  it("error objects keep the traceback of where they were made", function()
    H.run(function()
      local t = aio.create_task(function() aio.sleep(0); error(aio.TimeoutError("late")) end)
      local ok, err = pcall(t.await, t)
      assert.is_false(ok)
      assert.is_string(err.traceback)
      assert.matches("tracebacks_spec", err.traceback, 1, true)
    end)
  end)

  it("tracebacks are laid out as Lua's: long ones abridged, functions of _G named", function()
    local function deep(n)
      if n == 0 then return aio.TimeoutError("deep") end
      local e = deep(n - 1)
      return e                          -- (not a tail call: every level stays)
    end
    local tb = deep(40).traceback
    assert.matches("^stack traceback:\n\t", tb)
    assert.matches("\n\t%.%.%.\t%(skipping %d+ levels%)\n\t", tb)
    local first = tb:match("^stack traceback:\n\t([^\n]*)")
    assert.matches("tracebacks_spec.lua:%d+: in upvalue 'deep'", first)
    local before = select(2, tb:match("^(.-)\n\t%.%.%."):gsub("\n\t", ""))
    assert.equal(10, before)           -- ten levels, then the gap
    local _, err = pcall(function() error(aio.TimeoutError("in pcall")) end)
    assert.matches("[C]: in function 'pcall'", err.traceback, 1, true)
  end)
end)

describe("debug reports", function()
  it("reports streams and servers left open at loop close", function()
    local got = {}
    local r = aio.Runner { debug = true }
    r:get_loop():set_exception_handler(function(_, ctx) got[#got + 1] = ctx.message end)
    r:run(function() aio.start_server(function() end, "127.0.0.1", 0) end)
    r:close()
    local found = false
    for _, m in ipairs(got) do if m:find("left open", 1, true) then found = true end end
    assert.is_true(found)
  end)

  it("reports nothing about handles when everything was closed", function()
    local got = {}
    local r = aio.Runner { debug = true }
    r:get_loop():set_exception_handler(function(_, ctx) got[#got + 1] = ctx.message end)
    r:run(function()
      local s = aio.start_server(function() end, "127.0.0.1", 0)
      s:close()
      s:wait_closed()
    end)
    r:close()
    assert.same({}, got)
  end)
end)

describe("tracebacks through gather and task groups", function()
  it("gather's re-raised child error shows where the child raised it", function()
    local path = H.script([[
local aio = require "luaio"
local function bad() aio.sleep(0) error("child failed") end
aio.gather({ bad })
]])
    local r = H.cli({ path })
    os.remove(path)
    assert.equal(1, r.status)
    assert.matches("child failed", r.stderr, 1, true)
    assert.matches("came from task", r.stderr, 1, true)
  end)

  it("a TaskGroup's ExceptionGroup keeps where each child failed", function()
    H.run(function()
      local ok, eg = pcall(aio.TaskGroup, function(tg)
        tg:create_task(function() aio.sleep(0) error("first", 0) end)
      end)
      assert.is_false(ok)
      assert.is_string(eg.tracebacks[1])
      assert.matches("tracebacks_spec", eg.tracebacks[1], 1, true)
    end)
  end)

  it("the CLI prints every sub-error of an uncaught ExceptionGroup with its traceback", function()
    local path = H.script([[
local aio = require "luaio"
aio.TaskGroup(function(tg)
  tg:create_task(function() aio.sleep(0) error("first child failed") end)
  tg:create_task(function() aio.sleep(0) error(aio.TimeoutError("second")) end)
end)
]])
    local r = H.cli({ path })
    os.remove(path)
    assert.equal(1, r.status)
    assert.matches("[1] ", r.stderr, 1, true)
    assert.matches("first child failed", r.stderr, 1, true)
    assert.matches("[2] TimeoutError: second", r.stderr, 1, true)
  end)
end)
