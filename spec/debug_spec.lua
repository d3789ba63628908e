-- Debug mode (aio.Runner{debug = true} or LUAIO_DEBUG=1): what it reports.
local aio = require "luaio"
local H = require "helper"

local function busy(seconds)
  local t0 = os.clock()
  while os.clock() - t0 < seconds do end
end

describe("debug mode", function()
  it("reports a task step that ran over 100 ms without suspending", function()
    local got = H.reports(function()
      aio.create_task(busy, 0.12):await()
    end, { debug = true })
    assert.equal(1, #got)
    assert.matches("slow step", got[1].message, 1, true)
    assert.is_not_nil(got[1].task)
  end)

  it("reports nothing for fast steps, and nothing outside debug mode", function()
    assert.equal(0, #H.reports(function() aio.create_task(busy, 0.01):await() end,
      { debug = true }))
    assert.equal(0, #H.reports(function() aio.create_task(busy, 0.12):await() end))
  end)

  it("reports a task that swallowed its cancellation and returned", function()
    local got = H.reports(function()
      local t = aio.create_task(function() pcall(aio.sleep, 10); return "swallowed" end)
      aio.sleep(0)
      t:cancel()
      assert.equal("swallowed", t:await())
    end, { debug = true })
    assert.equal(1, #got)
    assert.matches("swallowed its cancellation", got[1].message, 1, true)
  end)

  it("is turned on by LUAIO_DEBUG=1 in the CLI", function()
    local path = H.script([[
      local aio = require "luaio"
      aio.run(function()
        local t = aio.create_task(function() local x = os.clock() while os.clock() - x < 0.12 do end end)
        t:await()
      end)
    ]])
    local r = H.cli({ path }, { env = "LUAIO_DEBUG=1" })
    os.remove(path)
    assert.equal(0, r.status, r.stderr)
    assert.matches("slow step", r.stderr, 1, true)
  end)
end)

describe("SIGUSR1 in the CLI", function()
  it("prints the tree of live tasks, what each waits on and where, to stderr", function()
    local path = H.script([[
local aio = require "luaio"
local function leaf() aio.sleep(10) end
local parent = aio.create_task(function()
  local c = aio.create_task(leaf)
  c:set_name("leaf-task")
  c:await()
end)
parent:set_name("parent-task")
aio.sleep(0.05)
local pid = io.open("/proc/self/stat"):read("n")
aio.create_subprocess_exec("kill", { "-USR1", tostring(pid) }):wait()
aio.sleep(0.05)
parent:cancel()
]])
    local r = H.cli({ path })
    os.remove(path)
    assert.equal(0, r.status, r.stderr)
    assert.matches("live tasks", r.stderr, 1, true)
    local p = r.stderr:find("parent-task [waiting: task]", 1, true)
    local l = r.stderr:find("leaf-task [waiting: sleep]", 1, true)
    assert.is_truthy(p and l and p < l, r.stderr)
    assert.matches("stack traceback", r.stderr, 1, true)
  end)
end)
