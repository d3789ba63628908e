-- spec/chaining_spec.lua: exception chaining (Python's __cause__ and
-- __context__ as err.cause / err.context) and the errors that are not
-- ordinary failures (aio.BaseError: KeyboardInterrupt, SystemExit,
-- BaseExceptionGroup), in tasks, timeouts, task groups, the CLI and a
-- plain lua5.4.
local aio = require "luaio"
local H = require "helper"

local V = { clock = "virtual" }

-- A value for a <close> variable whose handler raises err.
local function failing_close(err)
  return setmetatable({}, { __close = function() error(err, 0) end })
end

-- Runs code with `lua5.4 -e` (this checkout's luaio on the paths).
local function lua54(code)
  local err = os.tmpname()
  local cmd = ("timeout 20 lua5.4 -e %s 2>%s"):format(H.quote(code), H.quote(err))
  local _, _, status = os.execute(cmd)
  local text = H.readall(err)
  os.remove(err)
  return status, text
end

-- Runs a script with the luaio CLI.
local function cli(src, env)
  local path = H.script(src)
  local r = H.cli({ path }, { env = env })
  os.remove(path)
  return r
end

local DURING = "\n\nDuring handling of the above error, another error occurred:\n\n"
local CAUSE = "\n\nThe above error was the direct cause of the following error:\n\n"

------------------------------------------------------------------ implicit
describe("an error raised while a task's error unwinds", function()
  it("keeps the unwinding error as its .context", function()
    H.run(function()
      local first, second = aio.OSError("first"), aio.Error("cleanup failed")
      local t = aio.create_task(function()
        local _ <close> = failing_close(second)
        aio.sleep(0)
        error(first)
      end)
      local err = H.errof(t.await, t)
      assert.equal(second, err)
      assert.equal(first, err.context)
      assert.is_nil(err.cause)
      assert.is_nil(first.context)
    end)
  end)

  it("chains each handler's error to the one before, innermost first", function()
    H.run(function()
      local e1, e2, e3 = aio.Error("body"), aio.Error("inner close"), aio.Error("outer close")
      local t = aio.create_task(function()
        local _ <close> = failing_close(e3)
        local _ <close> = failing_close(e2)
        error(e1)
      end)
      local err = H.errof(t.await, t)
      assert.equal(e3, err)
      assert.equal(e2, err.context)
      assert.equal(e1, err.context.context)
    end)
  end)

  it("keeps a cancellation that unwinds as the context of a handler's error", function()
    H.run(function()
      local boom = aio.Error("close failed during cancellation")
      local t = aio.create_task(function()
        local _ <close> = failing_close(boom)
        aio.sleep(10)
      end)
      aio.sleep(0)
      t:cancel("stop")
      local err = H.errof(t.await, t)
      assert.equal(boom, err)
      assert.is_true(aio.is(err.context, aio.CancelledError))
      assert.equal("stop", err.context.message)
    end, V)
  end)

  it("does not chain an error to itself when a handler re-raises it", function()
    H.run(function()
      local e = aio.Error("same")
      local t = aio.create_task(function()
        local _ <close> = setmetatable({}, { __close = function(_, err) error(err, 0) end })
        error(e)
      end)
      assert.equal(e, H.errof(t.await, t))
      assert.is_nil(e.context)
    end)
  end)

  it("leaves alone an error caught by pcall earlier, and a handler's error on a normal exit", function()
    H.run(function()
      local caught, later = aio.Error("caught"), aio.Error("later")
      local t = aio.create_task(function()
        assert(not pcall(error, caught))
        do local _ <close> = failing_close(later) end
      end)
      assert.equal(later, H.errof(t.await, t))
      assert.is_nil(later.context)
    end)
  end)

  it("keeps a context the new error already has, and makes no loop", function()
    H.run(function()
      local mine, first = aio.Error("mine"), aio.Error("first")
      local second = aio.Error("second", { context = mine })
      local t = aio.create_task(function()
        local _ <close> = failing_close(second)
        error(first)
      end)
      assert.equal(second, H.errof(t.await, t))
      assert.equal(mine, second.context)
      -- a handler raising an error that is already the unwinding one's context
      local a = aio.Error("a")
      local b = aio.Error("b", { context = a })
      local t2 = aio.create_task(function()
        local _ <close> = failing_close(a)
        error(b)
      end)
      assert.equal(a, H.errof(t2.await, t2))
      assert.is_nil(a.context)
    end)
  end)

  it("chains only error objects: a string raised by a handler stays that string", function()
    H.run(function()
      local t = aio.create_task(function()
        local _ <close> = failing_close("plain string")
        error(aio.Error("first"))
      end)
      assert.equal("plain string", H.errof(t.await, t))
    end)
  end)
end)

------------------------------------------------------------------ timeouts
describe("a timeout's TimeoutError", function()
  it("has the CancelledError it replaced as its cause (aio.timeout)", function()
    H.run(function()
      local err = H.errof(aio.timeout, 0.01, function() aio.sleep(1) end)
      assert.is_true(aio.is(err, aio.TimeoutError))
      assert.is_true(aio.is(err.cause, aio.CancelledError))
      assert.equal(err.cause, err.context)
    end, V)
  end)

  it("has it as its cause from wait_for, a zero timeout included", function()
    H.run(function()
      local err = H.errof(aio.wait_for, function() aio.sleep(1) end, 0.01)
      assert.is_true(aio.is(err.cause, aio.CancelledError))
      local t = aio.create_task(function() aio.sleep(1) end)
      aio.sleep(0)
      err = H.errof(aio.wait_for, t, 0)
      assert.is_true(aio.is(err, aio.TimeoutError))
      assert.is_true(aio.is(err.cause, aio.CancelledError))
    end, V)
  end)

  it("prints as the TimeoutError alone in the CLI (a bare cancellation is not shown)", function()
    local r = cli([[
local aio = require "luaio"
aio.wait_for(function() aio.sleep(10) end, 0.01)
]])
    assert.equal(1, r.status)
    assert.matches("^[^\n]*: TimeoutError\nstack traceback:", r.stderr)
    assert.not_matches("CancelledError", r.stderr, 1, true)
  end)

  it("shows the cancellation as its cause in debug mode, where it has a traceback", function()
    local r = cli([[
local aio = require "luaio"
aio.wait_for(function() aio.sleep(10) end, 0.01)
]], "LUAIO_DEBUG=1")
    assert.equal(1, r.status)
    assert.matches(": CancelledError\nstack traceback:", r.stderr, 1, true)
    assert.matches(CAUSE .. "TimeoutError\nstack traceback:", r.stderr, 1, true)
  end)
end)

------------------------------------------------------------------ explicit
describe("explicit chaining", function()
  it("takes cause (and suppress_context) as fields of the error made", function()
    local low = aio.OSError("connection refused")
    low.traceback = nil
    local e = aio.Error("fetch failed", { cause = low, traceback = "TB" })
    assert.equal(low, e.cause)
    assert.equal("OSError: connection refused" .. CAUSE .. "Error: fetch failed\nTB",
      aio.format_exception(e))
    local quiet = aio.Error("quiet", { context = low, suppress_context = true, traceback = "TB" })
    assert.equal("Error: quiet\nTB", aio.format_exception(quiet))
  end)

  it("chains to a string error too", function()
    local e = aio.Error("wrapped", { cause = "socket.lua:3: timeout", traceback = "TB" })
    assert.equal("socket.lua:3: timeout" .. CAUSE .. "Error: wrapped\nTB", aio.format_exception(e))
  end)

  it("is printed by the CLI, cause first, with the implicit context of the cause", function()
    local r = cli([[
local aio = require "luaio"
local ok, low = pcall(function()
  local _ <close> = setmetatable({}, { __close = function() end })
  error(aio.OSError("connection refused"))
end)
error(aio.Error("fetch failed", { cause = low }))
]])
    assert.equal(1, r.status)
    local a = r.stderr:find(": OSError: connection refused\nstack traceback:", 1, true)
    local b = r.stderr:find(CAUSE .. "Error: fetch failed\nstack traceback:", 1, true)
    assert.truthy(a, r.stderr)
    assert.truthy(b, r.stderr)
    assert.is_true(a < b)
  end)
end)

------------------------------------------------------------------ printing
describe("printing a chain", function()
  local SRC = [[
local aio = require "luaio"
%s(function()
  local t = aio.create_task(function()
    local _ <close> = setmetatable({}, { __close = function()
      error(aio.Error("cleanup failed"))
    end })
    error(aio.OSError("first"))
  end)
  t:await()
end)
]]

  it("the CLI shows the error being handled, then the new one", function()
    local r = cli(SRC:format("aio.run"))
    assert.equal(1, r.status)
    assert.matches("^[^\n]*: OSError: first\nstack traceback:\n[^\n]*:7: in function", r.stderr)
    assert.matches(DURING .. "Error: cleanup failed\nstack traceback:", r.stderr, 1, true)
  end)

  it("a plain lua5.4 shows it too when the error escapes aio.run", function()
    local status, stderr = lua54(SRC:format("aio.run"))
    assert.equal(1, status)
    assert.matches("^lua5.4: OSError: first\nstack traceback:", stderr)
    assert.matches(DURING .. "Error: cleanup failed\nstack traceback:", stderr, 1, true)
  end)

  it("the default exception handler shows it for a never-retrieved error", function()
    local r = cli([[
local aio = require "luaio"
local t = aio.create_task(function()
  local _ <close> = setmetatable({}, { __close = function()
    error(aio.Error("cleanup failed"))
  end })
  error(aio.OSError("first"))
end)
aio.sleep(0.01)
t = nil
collectgarbage(); collectgarbage()
aio.sleep(0.01)
]])
    assert.equal(0, r.status, r.stderr)
    assert.matches("Task exception was never retrieved", r.stderr, 1, true)
    assert.matches("OSError: first\nstack traceback:", r.stderr, 1, true)
    assert.matches(DURING .. "Error: cleanup failed", r.stderr, 1, true)
  end)

  it("a TaskGroup's ExceptionGroup keeps the unwinding error but does not show it", function()
    H.run(function()
      local body_err
      local err = H.errof(aio.TaskGroup, function(tg)
        tg:create_task(function() aio.sleep(0.01); error(aio.Error("child")) end)
        local ok, e = pcall(aio.sleep, 1)
        body_err = e
        assert(not ok)
        error(e, 0)
      end)
      assert.is_true(aio.is(err, aio.ExceptionGroup))
      assert.is_true(aio.is(body_err, aio.CancelledError))
      assert.equal(body_err, err.context)
      assert.is_true(err.suppress_context)
      assert.not_matches("During handling", aio.format_exception(err), 1, true)
    end, V)
  end)
end)

------------------------------------------------------------------ BaseError
describe("the error hierarchy", function()
  it("has BaseError above everything, Error above the ordinary failures only", function()
    for _, cls in ipairs { aio.Error, aio.CancelledError, aio.KeyboardInterrupt,
                           aio.SystemExit, aio.TimeoutError } do
      assert.is_true(aio.is(cls(), aio.BaseError), tostring(cls))
    end
    assert.is_true(aio.is(aio.BaseExceptionGroup("m", { aio.SystemExit() }), aio.BaseError))
    assert.is_false(aio.is(aio.KeyboardInterrupt(), aio.Error))
    assert.is_false(aio.is(aio.SystemExit(), aio.Error))
    assert.is_false(aio.is(aio.CancelledError(), aio.Error))
    assert.is_true(aio.is(aio.TimeoutError(), aio.Error))
    assert.equal("KeyboardInterrupt: ctrl-c", tostring(aio.KeyboardInterrupt("ctrl-c")))
  end)

  it("makes ExceptionGroup both an Error and a BaseExceptionGroup", function()
    local eg = aio.ExceptionGroup("m", { aio.Error("x") })
    assert.is_true(aio.is(eg, aio.Error))
    assert.is_true(aio.is(eg, aio.BaseExceptionGroup))
    assert.is_true(aio.is(eg, aio.BaseError))
    local beg = aio.BaseExceptionGroup("m", { aio.KeyboardInterrupt() })
    assert.is_true(aio.is(beg, aio.BaseExceptionGroup))
    assert.is_false(aio.is(beg, aio.ExceptionGroup))
    assert.is_false(aio.is(beg, aio.Error))
  end)

  it("lets new classes derive from BaseError", function()
    local Abort = aio.new_error_class("Abort", aio.BaseError)
    assert.is_true(aio.is(Abort("x"), aio.BaseError))
    assert.is_false(aio.is(Abort("x"), aio.Error))
    local Mine = aio.new_error_class("Mine")
    assert.is_true(aio.is(Mine("x"), aio.Error))
  end)
end)

describe("BaseExceptionGroup", function()
  it("is an ExceptionGroup when every error is an ordinary failure", function()
    local g = aio.BaseExceptionGroup("m", { aio.Error("x"), "a string" })
    assert.equal(aio.ExceptionGroup, getmetatable(g))
    assert.equal("ExceptionGroup: m (2 sub-exceptions)", tostring(g))
    local b = aio.BaseExceptionGroup("m", { aio.Error("x"), aio.SystemExit(2) })
    assert.equal(aio.BaseExceptionGroup, getmetatable(b))
    assert.equal("BaseExceptionGroup: m (2 sub-exceptions)", tostring(b))
  end)

  it("is what ExceptionGroup refuses to hold", function()
    assert.matches("bad argument #2 to 'ExceptionGroup' %(cannot hold a BaseError that is "
      .. "not an Error: use aio.BaseExceptionGroup%)$",
      H.errof(aio.ExceptionGroup, "m", { aio.Error("x"), aio.KeyboardInterrupt() }))
    assert.matches("bad argument #2 to 'BaseExceptionGroup' %(non%-empty list of errors expected%)$",
      H.errof(aio.BaseExceptionGroup, "m", {}))
  end)

  it("splits into an ExceptionGroup of the ordinary part and a BaseExceptionGroup of the rest", function()
    local ki, e = aio.KeyboardInterrupt(), aio.Error("x")
    local b = aio.BaseExceptionGroup("m", { e, ki })
    local match, rest = b:split(aio.Error)
    assert.equal(aio.ExceptionGroup, getmetatable(match))
    assert.same({ e }, match.exceptions)
    assert.equal(aio.BaseExceptionGroup, getmetatable(rest))
    assert.same({ ki }, rest.exceptions)
    assert.equal(b, b:subgroup(aio.BaseError))
    assert.is_nil(b:subgroup(aio.TimeoutError))
  end)
end)

describe("an interrupt or exit request in a TaskGroup", function()
  it("leaves the group as itself, after the other children were cancelled", function()
    H.run(function()
      local log = {}
      local ki = aio.KeyboardInterrupt("ctrl-c")
      local err = H.errof(aio.TaskGroup, function(tg)
        tg:create_task(function() aio.sleep(0.01); error(ki, 0) end)
        tg:create_task(function()
          local ok, e = pcall(aio.sleep, 1)
          log[#log + 1] = ok and "finished" or "cancelled"
          if not ok then error(e, 0) end
        end)
        aio.sleep(1)
        log[#log + 1] = "body went on"
      end)
      assert.equal(ki, err)
      assert.same({ "cancelled" }, log)
      assert.equal(0, aio.current_task():cancelling())
    end, V)
  end)

  it("wins over ordinary failures that came first", function()
    H.run(function()
      local bye = aio.SystemExit(3)
      local err = H.errof(aio.TaskGroup, function(tg)
        tg:create_task(function() aio.sleep(0.01); error(aio.Error("ordinary")) end)
        tg:create_task(function()
          aio.sleep(0.01)
          local _ <close> = setmetatable({}, { __close = function() error(bye, 0) end })
          aio.sleep(1)
        end)
      end)
      assert.equal(bye, err)
    end, V)
  end)

  it("raised by the body leaves as itself once the children are cancelled", function()
    H.run(function()
      local child
      local bye = aio.SystemExit(0)
      local err = H.errof(aio.TaskGroup, function(tg)
        child = tg:create_task(function() aio.sleep(1) end)
        aio.sleep(0)
        error(bye, 0)
      end)
      assert.equal(bye, err)
      assert.is_true(child:cancelled())
    end, V)
  end)

  it("gives a BaseExceptionGroup when another BaseError mixes with ordinary failures", function()
    H.run(function()
      local Abort = aio.new_error_class("Abort", aio.BaseError)
      local abort, plain = Abort("stop"), aio.Error("plain")
      local err = H.errof(aio.TaskGroup, function(tg)
        tg:create_task(function() aio.sleep(0.01); error(abort, 0) end)
        tg:create_task(function()
          local ok, e = pcall(aio.sleep, 1)
          if not ok then error(plain, 0) end   -- fails while being cancelled
          error(e, 0)
        end)
      end)
      assert.equal(aio.BaseExceptionGroup, getmetatable(err))
      assert.same({ abort, plain }, err.exceptions)
      local match, rest = err:split(aio.Error)
      assert.same({ plain }, match.exceptions)
      assert.same({ abort }, rest.exceptions)
    end, V)
  end)
end)

describe("the CLI and these errors", function()
  it("exits with an uncaught SystemExit's status, quietly", function()
    local r = cli([[
local aio = require "luaio"
local tg <close> = aio.TaskGroup()
tg:create_task(function() aio.sleep(0.01); error(aio.SystemExit(3)) end)
tg:create_task(function() aio.sleep(10) end)
aio.sleep(10)
]])
    assert.equal(3, r.status)
    assert.equal("", r.stderr)
    r = cli('error(require("luaio").SystemExit())')
    assert.equal(0, r.status)
    assert.equal("", r.stderr)
  end)

  it("prints a SystemExit that carries a message, with status 1", function()
    local r = cli('error(require("luaio").SystemExit("config missing"))')
    assert.equal(1, r.status)
    assert.matches(": config missing\n$", r.stderr)
  end)

  it("exits 130 after an uncaught KeyboardInterrupt, printing it", function()
    local r = cli('error(require("luaio").KeyboardInterrupt("stop"))')
    assert.equal(130, r.status)
    assert.matches(": KeyboardInterrupt: stop\nstack traceback:", r.stderr, 1, true)
  end)
end)
