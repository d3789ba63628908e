-- spec/thread_spec.lua: aio.to_thread / loop:run_in_executor (SPEC
-- "Processes, signals, files, threads"; asyncio.to_thread semantics with
-- Lua's copy-across-states rules).
local aio = require "luaio"
local H = require "helper"

local fails = H.errof

-- Waits (in a task) until no request is outstanding: a cancelled to_thread
-- call keeps running on its worker until it finishes.
local function drain_requests()
  local loop = aio.get_running_loop()
  local deadline = aio.time() + 10
  while loop:stats().requests > 0 and aio.time() < deadline do aio.sleep(0.005) end
  assert.equal(0, loop:stats().requests)
end

-- A CPU-bound worker function: spins for `secs` seconds of wall time.
local function spin(secs)
  local t0 = os.time()
  local c0 = os.clock()
  local n = 0
  -- os.clock is process CPU time (all threads): good enough as a bound,
  -- with os.time as a safety net
  while os.clock() - c0 < secs and os.time() - t0 < 5 do n = n + 1 end
  return n
end

describe("aio.to_thread", function()
  it("runs fn(...) and returns all its results", function()
    H.run(function()
      local a, b = aio.to_thread(function(x, y) return x + y, x * y end, 3, 4)
      assert.equal(7, a)
      assert.equal(12, b)
      local r = table.pack(aio.to_thread(function() return nil, 2, nil end))
      assert.equal(3, r.n)
      assert.same({ nil, 2, nil, n = 3 }, r)
      r = table.pack(aio.to_thread(function() end))
      assert.equal(0, r.n)
      -- nil arguments keep their places
      r = table.pack(aio.to_thread(function(...) return select("#", ...), ... end, nil, 1, nil))
      assert.same({ 3, nil, 1, nil, n = 4 }, r)
    end)
  end)

  it("loop:run_in_executor is the same thing", function()
    H.run(function()
      local loop = aio.get_running_loop()
      assert.equal("HI", loop:run_in_executor(function(s) return s:upper() end, "hi"))
    end)
  end)

  it("copies nested tables, strings, integers and floats faithfully", function()
    H.run(function()
      local shared = { "s" }
      local arg = {
        1, 2.0, -0.5, math.maxinteger, math.mininteger, math.huge, -math.huge,
        "bin\0ary\255", true, false,
        nested = { deeper = { list = { 1, 2, 3 } } },
        [20] = "sparse", [2.5] = "float key", [true] = "bool key",
        a = shared, b = shared,           -- shared, not cyclic: fine
      }
      local back = aio.to_thread(function(t) return t end, arg)
      assert.are_not.equal(arg, back)      -- a copy
      assert.same(arg, back)
      assert.equal("integer", math.type(back[1]))
      assert.equal("float", math.type(back[2]))
      assert.equal(math.maxinteger, back[4])
      assert.equal("bin\0ary\255", back[8])
      -- a NaN survives too
      local nan = aio.to_thread(function(x) return x end, 0 / 0)
      assert.is_true(nan ~= nan)
      -- the worker sees its own copy: changing it does not change ours
      local orig = { n = 1 }
      local changed = aio.to_thread(function(t) t.n = 2; return t end, orig)
      assert.equal(1, orig.n)
      assert.equal(2, changed.n)
    end)
  end)

  it("copies large values", function()
    H.run(function()
      local big = ("x"):rep(4 * 1024 * 1024)
      local list = {}
      for i = 1, 100000 do list[i] = i end
      local n, s, l = aio.to_thread(function(str, t) return #str, str, t end, big, list)
      assert.equal(#big, n)
      assert.is_true(s == big)
      assert.equal(100000, #l)
      assert.equal(100000, l[100000])
    end)
  end)

  it("runs CPU-bound work without blocking the loop #timing", function()
    H.run(function()
      local ticks = 0
      local ticker = aio.spawn(function()
        while true do aio.sleep(0.01); ticks = ticks + 1 end
      end)
      aio.sleep(0)
      local t0 = aio.time()
      local n = aio.to_thread(spin, 0.3)
      local took = aio.time() - t0
      ticker:cancel()
      pcall(ticker.await, ticker)
      assert.is_true(n > 0)
      assert.is_true(took >= 0.25, "took " .. took)
      -- ~30 ticks if the loop ran freely; 0 or 1 if it was blocked
      assert.is_true(ticks >= 10, "the loop was blocked: ticks = " .. ticks)
    end)
  end)

  it("runs calls concurrently on several workers", function()
    H.run(function()
      local t0 = aio.time()
      local jobs = {}
      for i = 1, 4 do
        jobs[i] = function()
          return aio.to_thread(function(k) os.execute("sleep 0.5"); return k end, i)
        end
      end
      local res = aio.gather(jobs)
      assert.same({ 1, 2, 3, 4, n = 4 }, { res[1], res[2], res[3], res[4], n = res.n })
      local took = aio.time() - t0
      -- one after another: 2 s; together: 0.5 s and the cost of 4 forks
      assert.is_true(took < 1.5, "not concurrent: took " .. took)
    end)
  end)

  it("many calls give the right results (pooled worker states)", function()
    H.run(function()
      local jobs = {}
      for i = 1, 200 do
        jobs[i] = function()
          return aio.to_thread(function(k)
            local t = {}
            for j = 1, k do t[j] = j end
            return #t, k * k
          end, i)
        end
      end
      local res = aio.gather(jobs)
      for i = 1, 200 do assert.equal(i, res[i]) end
    end)
  end)

  describe("the function", function()
    it("must be a Lua function", function()
      H.run(function()
        local err = fails(aio.to_thread, 42)
        assert.matches("bad argument #1 to 'to_thread'", err)
        err = fails(aio.to_thread, nil)
        assert.matches("bad argument #1 to 'to_thread'", err)
        err = fails(aio.to_thread, print)
        assert.matches("bad argument #1 to 'to_thread'", err)
        assert.matches("C function", err)
        err = fails(aio.to_thread, setmetatable({}, { __call = function() end }))
        assert.matches("bad argument #1 to 'to_thread'", err)
      end)
    end)

    it("may not use locals of an enclosing function (upvalues): clear error", function()
      H.run(function()
        local secret = 42
        local err = fails(aio.to_thread, function() return secret end)
        assert.matches("to_thread", err)
        assert.matches("upvalue", err)
        assert.matches("'secret'", err)
        -- module-level locals are upvalues too
        err = fails(aio.to_thread, function() return aio.time() end)
        assert.matches("upvalue", err)
        assert.matches("'aio'", err)
      end)
    end)

    it("uses globals of the worker: the standard libraries", function()
      H.run(function()
        local r = aio.to_thread(function(s)
          return string.rep(s, 3), math.floor(2.5), table.concat({ "a", "b" }, ","),
            type(io.open), type(os.time()), type(coroutine.wrap), type(utf8.char)
        end, "ab")
        assert.equal("ababab", r)
        local all = table.pack(aio.to_thread(function()
          return string.format("%d", 7), math.floor(2.5), table.concat({ "a", "b" }, ","),
            type(io.open), type(os.time()), type(coroutine.wrap), type(utf8.char)
        end))
        assert.same({ "7", 2, "a,b", "function", "number", "function", "function", n = 7 }, all)
      end)
    end)

    it("does not see the caller's globals", function()
      H.run(function()
        rawset(_G, "LUAIO_THREAD_SPEC_GLOBAL", "caller")
        local ok, v = pcall(aio.to_thread, function() return LUAIO_THREAD_SPEC_GLOBAL end)
        rawset(_G, "LUAIO_THREAD_SPEC_GLOBAL", nil)
        assert.is_true(ok, tostring(v))
        assert.is_nil(v)
        -- nor the caller's luaio
        assert.is_nil(aio.to_thread(function() return package.loaded["luaio"] end))
      end)
    end)

    it("gets a fresh global table on every call", function()
      H.run(function()
        for _ = 1, 3 do   -- pooled states are reused: try a few times
          local before = aio.to_thread(function()
            local seen = leaked_global
            leaked_global = "from an earlier call"
            return seen
          end)
          assert.is_nil(before)
        end
      end)
    end)

    it("nothing leaks between calls through _G or load either", function()
      H.run(function()
        for _ = 1, 3 do
          local seen = table.pack(aio.to_thread(function()
            local a, b = rawget(_G, "via_G"), rawget(_G, "via_load")
            _G.via_G = true
            load("via_load = true")()
            return a, b, via_G, via_load
          end))
          assert.same({ nil, nil, true, true, n = 4 }, seen)
        end
      end)
    end)

    it("os.exit in a worker raises an error instead of exiting", function()
      H.run(function()
        local err = fails(aio.to_thread, function() os.exit(3) end)
        assert.matches("os.exit", tostring(err))
        -- the worker pool still works
        assert.equal(5, aio.to_thread(function() return 5 end))
      end)
    end)
  end)

  describe("argument and result copying", function()
    it("refuses functions, userdata, coroutines, cycles and metatables, naming the argument", function()
      H.run(function()
        local id = function(...) return ... end
        local cases = {
          { { print }, "function", "#2" },
          { { 1, function() end }, "function", "#3" },
          { { io.stdout }, "userdata", "#2" },
          { { coroutine.create(id) }, "coroutine", "#2" },
          { { "ok", { deep = { f = id } } }, "function", "#3" },
        }
        local cyc = {}
        cyc.self = cyc
        cases[#cases + 1] = { { cyc }, "cycle", "#2" }
        local deepcyc = { a = { b = {} } }
        deepcyc.a.b.c = deepcyc.a
        cases[#cases + 1] = { { 1, 2, deepcyc }, "cycle", "#4" }
        cases[#cases + 1] = { { setmetatable({}, {}) }, "metatable", "#2" }
        for _, c in ipairs(cases) do
          local args = c[1]
          local err = fails(aio.to_thread, id, table.unpack(args))
          assert.is_string(err)
          assert.matches("to_thread", err)
          assert.matches(c[2], err)
          assert.matches("argument " .. c[3], err, 1, true)
        end
        -- and the loop is still fine
        assert.equal(1, aio.to_thread(id, 1))
      end)
    end)

    it("a table used twice (no cycle) is copied", function()
      H.run(function()
        local t = { 1 }
        local r = aio.to_thread(function(x) return x end, { t, t, { t } })
        assert.same({ { 1 }, { 1 }, { { 1 } } }, r)
      end)
    end)

    it("refuses results that cannot be copied, naming the result", function()
      H.run(function()
        local err = fails(aio.to_thread, function() return 1, print end)
        assert.matches("function", err)
        assert.matches("result #2", err, 1, true)
        err = fails(aio.to_thread, function() local t = {}; t[1] = t; return t end)
        assert.matches("cycle", err)
        assert.matches("result #1", err, 1, true)
        err = fails(aio.to_thread, function() return io.stderr end)
        assert.matches("userdata", err)
        err = fails(aio.to_thread, function() return setmetatable({}, {}) end)
        assert.matches("metatable", err)
      end)
    end)
  end)

  describe("errors", function()
    it("string errors are raised in the caller unchanged", function()
      H.run(function()
        local err = fails(aio.to_thread, function() error("plain", 0) end)
        assert.equal("plain", err)
        err = fails(aio.to_thread, function(m) error(m) end, "with position")
        assert.is_string(err)
        assert.matches("with position$", err)
        err = fails(aio.to_thread, function() local x = nil; return x.field end)
        assert.matches("attempt to index", err)
        err = fails(aio.to_thread, function() error(42) end)
        assert.equal(42, err)
      end)
    end)

    it("table errors are copied and get the worker's traceback", function()
      H.run(function()
        local err = fails(aio.to_thread, function()
          local function inner() error({ code = 7, msg = "bad" }) end
          inner()
        end)
        assert.is_table(err)
        assert.equal(7, err.code)
        assert.equal("bad", err.msg)
        assert.is_string(err.traceback)
        assert.matches("stack traceback", err.traceback)
        assert.matches("inner", err.traceback)
        -- a traceback the error already carries is kept
        err = fails(aio.to_thread, function() error({ traceback = "mine" }) end)
        assert.equal("mine", err.traceback)
      end)
    end)

    it("an error value that cannot be copied becomes its string form", function()
      H.run(function()
        local err = fails(aio.to_thread, function()
          error(setmetatable({}, { __tostring = function() return "custom error" end }))
        end)
        assert.is_string(err)
        assert.matches("custom error", err)
      end)
    end)

    it("errors are caught by pcall in the caller and the loop carries on", function()
      H.run(function()
        for i = 1, 20 do
          local ok, err = pcall(aio.to_thread, function(k)
            if k % 2 == 0 then error("even " .. k, 0) end
            return k
          end, i)
          if i % 2 == 0 then
            assert.is_false(ok)
            assert.equal("even " .. i, err)
          else
            assert.is_true(ok)
            assert.equal(i, err)
          end
        end
      end)
    end)
  end)

  describe("cancellation", function()
    it("cancelling the awaiting task raises CancelledError promptly; the work is dropped safely", function()
      H.run(function()
        local t = aio.spawn(aio.to_thread, spin, 0.8)
        aio.sleep(0.05)
        local t0 = aio.time()
        assert.is_true(t:cancel())
        local ok, err = pcall(t.await, t)
        assert.is_false(ok)
        assert.is_true(aio.is(err, aio.CancelledError), tostring(err))
        assert.is_true(t:cancelled())
        -- the worker has ~0.75 s left; cancellation must not wait for it
        assert.is_true(aio.time() - t0 < 0.5, "cancellation waited for the worker")
        -- the worker keeps running to its end; afterwards all is well
        drain_requests()
        assert.equal(3, aio.to_thread(function() return 3 end))
      end)
    end)

    it("cancelling before the work starts", function()
      H.run(function()
        local tasks = {}
        -- more calls than the pool has threads: some are still queued
        for i = 1, 16 do tasks[i] = aio.spawn(aio.to_thread, function(k) os.execute("sleep 0.05"); return k end, i) end
        aio.sleep(0)
        for i = 1, 16 do tasks[i]:cancel() end
        for i = 1, 16 do
          local ok, err = pcall(tasks[i].await, tasks[i])
          assert.is_false(ok)
          assert.is_true(aio.is(err, aio.CancelledError), tostring(err))
        end
        drain_requests()
        assert.equal("after", aio.to_thread(function() return "after" end))
      end)
    end)

    it("a wait_for timeout around to_thread raises TimeoutError", function()
      H.run(function()
        local ok, err = pcall(aio.wait_for, aio.spawn(aio.to_thread, spin, 0.3), 0.05)
        assert.is_false(ok)
        assert.is_true(aio.is(err, aio.TimeoutError), tostring(err))
        drain_requests()
      end)
    end)
  end)

  it("needs a running task", function()
    H.run(function()
      local ok, err
      aio.get_running_loop():call_soon(function()
        ok, err = pcall(aio.to_thread, function() return 1 end)
      end)
      aio.sleep(0.01)
      assert.is_false(ok)
      assert.matches("to_thread", tostring(err))
      assert.matches("task", tostring(err))
    end)
  end)
end)
