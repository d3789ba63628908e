-- spec/errors_spec.lua: the error classes, aio.is, and error values
-- crossing aio.run / Runner:run unchanged.
local aio = require "luaio"
local H = require "helper"

-- The classes made as Class([message] [, fields]); ExceptionGroup is made
-- as ExceptionGroup(message, errors) and is checked on its own.
local NAMES = {
  "Error", "CancelledError", "TimeoutError", "InvalidStateError",
  "QueueEmpty", "QueueFull", "QueueShutDown", "IncompleteReadError",
  "LimitOverrunError", "BrokenBarrierError", "OSError", "SSLError",
}

describe("error classes", function()
  it("exist and are callable, making instances that print as 'Name: message'", function()
    for _, name in ipairs(NAMES) do
      local cls = aio[name]
      assert.is_table(cls, name)
      local e = cls("something happened")
      assert.is_table(e)
      assert.equal("something happened", e.message)
      assert.equal(name .. ": something happened", tostring(e))
      assert.is_true(aio.is(e, cls), name)
    end
  end)

  it("print just the class name when there is no message", function()
    for _, name in ipairs(NAMES) do
      local e = aio[name]()
      assert.is_nil(e.message)
      assert.equal(name, tostring(e))
    end
  end)

  it("carry a traceback of where they were made", function()
    local function make_it_here() return aio.TimeoutError("t") end
    local e = make_it_here()
    assert.is_string(e.traceback)
    assert.matches("errors_spec", e.traceback, 1, true)
    assert.matches("make_it_here", e.traceback, 1, true)
  end)

  it("take extra fields from a trailing table", function()
    local e = aio.IncompleteReadError("short read", { partial = "ab", expected = 5 })
    assert.equal("short read", e.message)
    assert.equal("ab", e.partial)
    assert.equal(5, e.expected)
    local o = aio.OSError("refused", { errno = -111, code = "ECONNREFUSED" })
    assert.equal("ECONNREFUSED", o.code)
    assert.equal(-111, o.errno)
    local s = aio.SSLError("bad cert", { reason = "CERTIFICATE_VERIFY_FAILED" })
    assert.equal("CERTIFICATE_VERIFY_FAILED", s.reason)
  end)

  it("make a new instance per call", function()
    local a, b = aio.QueueEmpty(), aio.QueueEmpty()
    assert.is_false(rawequal(a, b))
  end)
end)

describe("aio.is", function()
  it("makes every class but CancelledError an aio.Error", function()
    for _, name in ipairs(NAMES) do
      local e = aio[name]("m")
      if name == "CancelledError" then
        assert.is_false(aio.is(e, aio.Error))
      else
        assert.is_true(aio.is(e, aio.Error), name)
      end
    end
  end)

  it("makes ExceptionGroup an aio.Error holding its errors", function()
    local inner = aio.TimeoutError("t")
    local g = aio.ExceptionGroup("several", { inner, "plain" })
    assert.is_true(aio.is(g, aio.ExceptionGroup))
    assert.is_true(aio.is(g, aio.Error))
    assert.is_false(aio.is(g, aio.TimeoutError))
    assert.equal("several", g.message)
    assert.is_true(rawequal(inner, g.exceptions[1]))
    assert.equal("plain", g.exceptions[2])
  end)

  it("builds an ExceptionGroup with its errors in a fresh state too", function()
    -- (its constructor lives in a lazily loaded module: the first call
    -- must load it, not fall back to the plain error constructor)
    local path = H.script([[
      local aio = require "luaio"
      local g = aio.ExceptionGroup("several", { aio.TimeoutError("t"), "plain" })
      print(#g.exceptions, g.exceptions[2], tostring(g))
    ]])
    local r = H.cli({ path })
    os.remove(path)
    assert.equal(0, r.status, r.stderr)
    assert.equal("2\tplain\tExceptionGroup: several (2 sub-exceptions)\n", r.stdout)
  end)

  it("walks the hierarchy: SSLError is an OSError, not the other way round", function()
    assert.is_true(aio.is(aio.SSLError("x"), aio.OSError))
    assert.is_true(aio.is(aio.SSLError("x"), aio.Error))
    assert.is_false(aio.is(aio.OSError("x"), aio.SSLError))
  end)

  it("does not confuse sibling classes", function()
    assert.is_false(aio.is(aio.TimeoutError(), aio.InvalidStateError))
    assert.is_false(aio.is(aio.QueueEmpty(), aio.QueueFull))
    assert.is_false(aio.is(aio.Error(), aio.TimeoutError))
    assert.is_false(aio.is(aio.CancelledError(), aio.TimeoutError))
    assert.is_false(aio.is(aio.TimeoutError(), aio.CancelledError))
  end)

  it("is false for strings, numbers, nil, booleans and plain tables", function()
    assert.is_false(aio.is("TimeoutError: x", aio.TimeoutError))
    assert.is_false(aio.is("x", aio.Error))
    assert.is_false(aio.is(42, aio.Error))
    assert.is_false(aio.is(nil, aio.Error))
    assert.is_false(aio.is(false, aio.Error))
    assert.is_false(aio.is({}, aio.Error))
    assert.is_false(aio.is({ message = "x" }, aio.Error))
    assert.is_false(aio.is(setmetatable({}, { __name = "TimeoutError" }), aio.TimeoutError))
  end)

  it("recognises an error object after it was raised and caught", function()
    local e = aio.QueueFull("full")
    local ok, err = pcall(error, e)
    assert.is_false(ok)
    assert.is_true(rawequal(e, err))
    assert.is_true(aio.is(err, aio.QueueFull))
  end)

  it("recognises the errors the runtime raises", function()
    H.run(function()
      local f = aio.Future()
      local ok, err = pcall(f.result, f)
      assert.is_false(ok)
      assert.is_true(aio.is(err, aio.InvalidStateError))
      assert.is_true(aio.is(err, aio.Error))
      assert.matches("^InvalidStateError", tostring(err))
      assert.is_string(err.message)
    end)
  end)
end)

describe("aio.new_error_class", function()
  it("makes a subclass of the given parent", function()
    local AppError = aio.new_error_class("AppError", aio.Error)
    local DbError = aio.new_error_class("DbError", AppError)
    local e = DbError("down", { table = "users" })
    assert.equal("DbError: down", tostring(e))
    assert.equal("users", e.table)
    assert.is_true(aio.is(e, DbError))
    assert.is_true(aio.is(e, AppError))
    assert.is_true(aio.is(e, aio.Error))
    assert.is_false(aio.is(e, aio.CancelledError))
    assert.is_false(aio.is(AppError("x"), DbError))
    assert.is_string(e.traceback)
  end)

  it("can extend a built-in class", function()
    local Deadline = aio.new_error_class("Deadline", aio.TimeoutError)
    local e = Deadline()
    assert.is_true(aio.is(e, aio.TimeoutError))
    assert.is_true(aio.is(e, aio.Error))
    assert.equal("Deadline", tostring(e))
  end)

  it("defaults the parent to aio.Error", function()
    -- aio.Error is the base of every class except CancelledError
    local Mine = aio.new_error_class("Mine")
    assert.is_true(aio.is(Mine("x"), aio.Error))
  end)

  it("rejects a bad name", function()
    local ok, err = pcall(aio.new_error_class, nil)
    assert.is_false(ok)
    assert.matches("bad argument #1", err, 1, true)
  end)
end)

describe("CancelledError", function()
  it("raised by the runtime carries no traceback outside debug mode", function()
    H.run(function()
      local t = aio.create_task(function() aio.sleep(10) end)
      aio.sleep(0)
      t:cancel("m")
      local ok, err = pcall(t.await, t)
      assert.is_false(ok)
      assert.is_true(aio.is(err, aio.CancelledError))
      assert.is_nil(rawget(err, "traceback"))
      assert.equal("CancelledError: m", tostring(err))
    end)
  end)

  it("raised by the runtime in debug mode carries a traceback", function()
    H.run(function()
      local t = aio.create_task(function() aio.sleep(10) end)
      aio.sleep(0)
      t:cancel()
      local ok, err = pcall(t.await, t)
      assert.is_false(ok)
      assert.is_true(aio.is(err, aio.CancelledError))
      assert.is_string(err.traceback)
    end, { debug = true })
  end)
end)

describe("error values crossing aio.run", function()
  it("re-raises a string error unchanged", function()
    local ok, err = pcall(aio.run, function() aio.sleep(0); error("run failed", 0) end)
    assert.is_false(ok)
    assert.equal("run failed", err)
  end)

  it("re-raises a table error rawequal", function()
    local e = {}
    local ok, err = pcall(aio.run, function() aio.sleep(0); error(e) end)
    assert.is_false(ok)
    assert.is_true(rawequal(e, err))
  end)

  it("re-raises an error object with its class", function()
    local ok, err = pcall(aio.run, function() error(aio.QueueShutDown("closed")) end)
    assert.is_false(ok)
    assert.is_true(aio.is(err, aio.QueueShutDown))
    assert.equal("closed", err.message)
  end)

  it("passes arguments in and all results out, nils included", function()
    local r = table.pack(aio.run(function(...)
      aio.sleep(0)
      return ...
    end, 1, nil, "three", nil))
    assert.equal(4, r.n)
    assert.same({ n = 4, 1, nil, "three", nil }, r)
  end)

  it("rejects a non-function with a lauxlib message", function()
    local ok, err = pcall(aio.run, 42)
    assert.is_false(ok)
    assert.matches("bad argument #1 to 'run' (function expected, got number)", err, 1, true)
  end)

  it("refuses to nest aio.run inside a task of a running loop", function()
    H.run(function()
      local t = aio.create_task(function() aio.sleep(0) end)   -- not the only task
      local ok, err = pcall(aio.run, function() end)
      assert.is_false(ok)
      assert.matches("a loop is already running", err, 1, true)
      t:await()
    end)
  end)

  it("cancels tasks still pending when aio.run ends", function()
    local t
    local r = aio.run(function()
      t = aio.create_task(function() aio.sleep(3600) end)
      aio.sleep(0)
      return "main done"
    end)
    assert.equal("main done", r)
    assert.is_true(t:done())
    assert.is_true(t:cancelled())
  end)
end)
