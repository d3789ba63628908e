-- spec/ux_rest_spec.lua: what a new user trips over (issue 22), the rest:
-- to_thread calls that leave nothing behind for the next one.
local aio = require "luaio"
local H = require "helper"

describe("aio.to_thread: nothing leaks between calls", function()
  -- Serial calls: with reused worker states, the second call would get the
  -- state the first one changed.
  local function twice(fn)
    return H.run(function()
      local seen = {}
      for i = 1, 4 do seen[i] = table.pack(aio.to_thread(fn)) end
      return seen
    end)
  end

  it("a library table changed by one call is whole again in the next", function()
    local seen = twice(function()
      local before = { math.pi, package.path, string.upper("a"), type(rawget(string, "mine")) }
      math.pi = 3                                     -- luacheck: ignore 122
      package.path = "/changed/?.lua"
      string.upper = function() return "replaced" end -- luacheck: ignore 122
      string.mine = true                              -- luacheck: ignore 142
      return table.unpack(before)
    end)
    for i = 1, 4 do
      assert.equal(math.pi, seen[i][1])
      assert.is_nil(seen[i][2]:find("/changed", 1, true))
      assert.equal("A", seen[i][3])
      assert.equal("nil", seen[i][4])
    end
  end)

  it("modules required, metatables and the registry do not persist", function()
    local seen = twice(function()
      local r = {
        package.loaded.leaked == nil,
        getmetatable("").__index.leaked == nil,
        debug.getmetatable(0) == nil,
        debug.getregistry().leaked == nil,
        collectgarbage("isrunning"),
      }
      package.loaded.leaked = { 1 }
      getmetatable("").__index.leaked = true
      debug.setmetatable(0, { __index = math })
      debug.getregistry().leaked = true
      collectgarbage("stop")
      return table.unpack(r)
    end)
    for i = 1, 4 do
      assert.same({ true, true, true, true, true, n = 5 }, seen[i])
    end
  end)

  it("a global set through the real global table is gone too", function()
    local seen = twice(function()
      local g = debug.getregistry()[2]    -- LUA_RIDX_GLOBALS
      local before = rawget(g, "leaked_by_registry")
      rawset(g, "leaked_by_registry", true)
      return before
    end)
    for i = 1, 4 do assert.is_nil(seen[i][1]) end
  end)
end)

describe("aio.to_thread: the pool's size", function()
  -- 8 calls that each sleep 0.4 s: two rounds on the default 4 threads,
  -- one round on 8.
  local src = [[
    local t0 = aio.time()
    local jobs = {}
    for i = 1, 8 do
      jobs[i] = function()
        return aio.to_thread(function() os.execute("sleep 0.4") end)
      end
    end
    aio.gather(jobs)
    print(aio.time() - t0)
  ]]
  local function took(env)
    local path = H.script('local aio = require "luaio"\n' .. src)
    local r = H.cli({ path }, { env = env })
    os.remove(path)
    assert.equal(0, r.status, r.stderr)
    return tonumber(r.stdout)
  end

  it("is 4 threads by default, UV_THREADPOOL_SIZE sizes it", function()
    local default = took("env -u UV_THREADPOOL_SIZE")
    assert.is_true(default >= 0.8, "4 threads: two rounds, took " .. default)
    local eight = took("UV_THREADPOOL_SIZE=8")
    assert.is_true(eight < 0.75, "8 threads: one round, took " .. eight)
  end)
end)
