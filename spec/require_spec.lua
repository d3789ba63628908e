-- spec/require_spec.lua: the CLI's yieldable require, and require under
-- stock lua5.4 (SPEC.md "Scheduling discipline").
--
-- Everything runs in child processes (the CLI through H.cli, stock Lua as
-- `lua5.4`) with a private module directory, so the result does not depend
-- on whether busted itself runs under the CLI or lua5.4.
local H = require "helper"

local readall = H.readall

local function write(path, src)
  local f = assert(io.open(path, "wb"))
  f:write(src)
  f:close()
end

-- A fresh directory holding the given modules ({name = source}).
local function moddir(mods)
  local dir = os.tmpname()
  os.remove(dir)
  assert(os.execute("mkdir -p " .. H.quote(dir)))
  for name, src in pairs(mods) do write(dir .. "/" .. name .. ".lua", src) end
  return dir
end

local function rmdir(dir)
  os.execute("rm -rf " .. H.quote(dir))
end

local function path_env(dir)
  return "LUA_PATH=" .. H.quote(dir .. "/?.lua;" .. (os.getenv("LUA_PATH") or ";"))
end

-- Runs `src` as a script through the CLI with `dir` first on LUA_PATH.
local function cli(dir, src, extra)
  local path = dir .. "/main_script.lua"
  write(path, src)
  local args = {}
  for _, a in ipairs(extra or {}) do args[#args + 1] = a end
  args[#args + 1] = path
  return H.cli(args, { env = path_env(dir), cwd = dir })
end

-- Runs `src` as a script through stock lua5.4, the same way.
local function lua54(dir, src)
  local path = dir .. "/main_script.lua"
  write(path, src)
  local out, err = os.tmpname(), os.tmpname()
  local _, _, code = os.execute(("cd %s && %s timeout 20 lua5.4 %s </dev/null >%s 2>%s"):format(
    H.quote(dir), path_env(dir), H.quote(path), H.quote(out), H.quote(err)))
  local r = { status = code, stdout = readall(out), stderr = readall(err) }
  os.remove(out); os.remove(err)
  return r
end

describe("require in the CLI", function()
  local dir
  setup(function()
    dir = moddir {
      sleepy = [[
        local aio = require "luaio"
        LOADS = (LOADS or 0) + 1
        local name, path = ...
        aio.sleep(0.03)
        return { value = "sleepy", name = name, path = path, task = aio.current_task() }
      ]],
      failing = [[
        local aio = require "luaio"
        FAILS = (FAILS or 0) + 1
        aio.sleep(0.02)
        error(FAIL_VALUE)
      ]],
      outer = [[
        local aio = require "luaio"
        aio.sleep(0.01)
        local s = require "sleepy"
        return { inner = s }
      ]],
      plain = [[ return { plain = true } ]],
      returns_nil = [[ RAN_NIL = true ]],
      sets_loaded = [[ package.loaded[...] = "set by module" ]],
      syntax = [[ return = 1 ]],
      rterror = [[ local x = nil; return x.field ]],
    }
  end)
  teardown(function() rmdir(dir) end)

  it("lets a module suspend at top level (aio.sleep works)", function()
    local r = cli(dir, [[
      local aio = require "luaio"
      local t0 = aio.time()
      local m = require "sleepy"
      print(m.value, aio.time() - t0 >= 0.02, package.loaded.sleepy == m, LOADS)
      print(m.task == aio.current_task())
      print(require "sleepy" == m, LOADS)   -- loaded once
    ]])
    assert.equal(0, r.status, r.stderr)
    assert.equal("sleepy\ttrue\ttrue\t1\ntrue\ntrue\t1\n", r.stdout)
  end)

  it("keeps other tasks running while a module is loading", function()
    local r = cli(dir, [[
      local aio = require "luaio"
      local ticks = 0
      local ticker = aio.create_task(function()
        while true do aio.sleep(0.005); ticks = ticks + 1 end
      end)
      require "sleepy"
      print(ticks >= 2)
      ticker:cancel()
    ]])
    assert.equal(0, r.status, r.stderr)
    assert.equal("true\n", r.stdout)
  end)

  it("passes the module name and the file path to the loader; returns both", function()
    local r = cli(dir, [[
      local m, data = require "sleepy"
      print(m.name, m.path == data, (data:gsub("^.*/", "")))
    ]])
    assert.equal(0, r.status, r.stderr)
    assert.equal("sleepy\ttrue\tsleepy.lua\n", r.stdout)
  end)

  it("makes a concurrent require of a loading module wait and get the same value", function()
    local r = cli(dir, [[
      local aio = require "luaio"
      local order = {}
      local function req(tag)
        return aio.create_task(function()
          local m = require "sleepy"
          order[#order + 1] = tag
          return m
        end)
      end
      local a, b = req("a"), req("b")
      local ma, mb = a:await(), b:await()
      local mc = require "sleepy"
      print(LOADS, rawequal(ma, mb), rawequal(ma, mc), ma.value, #order)
    ]])
    assert.equal(0, r.status, r.stderr)
    assert.equal("1\ttrue\ttrue\tsleepy\t2\n", r.stdout)
  end)

  it("makes a concurrent require of a failing module get the same error", function()
    local r = cli(dir, [[
      local aio = require "luaio"
      FAIL_VALUE = { code = "E42" }
      local function req()
        return aio.create_task(function() return pcall(require, "failing") end)
      end
      local a, b = req(), req()
      local oka, ea = a:await()
      local okb, eb = b:await()
      print(oka, okb, ea == FAIL_VALUE, eb == FAIL_VALUE, FAILS)
      print(package.loaded.failing)
      -- as in Lua, a later require tries again
      print(pcall(require, "failing"))
      print(FAILS)
    ]])
    assert.equal(0, r.status, r.stderr)
    local lines = {}
    for l in r.stdout:gmatch("[^\n]*\n") do lines[#lines + 1] = l end
    assert.equal("false\tfalse\ttrue\ttrue\t1\n", lines[1])
    assert.equal("nil\n", lines[2])
    assert.matches("^false\t", lines[3])
    assert.equal("2\n", lines[4])
  end)

  it("works from a non-main task, from a user coroutine, and nested in a module", function()
    local r = cli(dir, [[
      local aio = require "luaio"
      local t = aio.create_task(function() return require("sleepy").value end)
      print(t:await())
      print(coroutine.wrap(function() return require("outer").inner.value end)())
    ]])
    assert.equal(0, r.status, r.stderr)
    assert.equal("sleepy\nsleepy\n", r.stdout)
  end)

  it("works for -l with a module that suspends", function()
    local r = H.cli({ "-l", "sleepy", "-e", "print(sleepy.value)" },
      { env = path_env(dir), cwd = dir })
    assert.equal(0, r.status, r.stderr)
    assert.equal("sleepy\n", r.stdout)
  end)

  it("honours package.preload and custom package.searchers in order", function()
    local r = cli(dir, [[
      package.preload.pre = function(name, data)
        require("luaio").sleep(0.001)
        return { name = name, data = data }
      end
      local m, d = require "pre"
      print(m.name, m.data, d)
      table.insert(package.searchers, 2, function(name)
        if name:match("^virt%.") then
          return function(n, data) return "virtual:" .. n .. ":" .. data end, "vdata"
        end
        return "\n\tno virtual module '" .. name .. "'"
      end)
      print(require "virt.x")
      local ok, err = pcall(require, "nothing_here")
      print(ok, err:find("no virtual module 'nothing_here'", 1, true) ~= nil)
    ]])
    assert.equal(0, r.status, r.stderr)
    assert.equal("pre\t:preload:\t:preload:\nvirtual:virt.x:vdata\tvdata\nfalse\ttrue\n", r.stdout)
  end)

  it("stores true for a module returning nothing; keeps a value the module set", function()
    local r = cli(dir, [[
      print(require "returns_nil", RAN_NIL, package.loaded.returns_nil)
      print(require "sets_loaded")
      print(select("#", require "plain"), select("#", require "plain"))
    ]])
    assert.equal(0, r.status, r.stderr)
    -- first require of plain returns 2 values (module, path), a cached one 1
    assert.matches("^true\ttrue\ttrue\nset by module\t[^\n]*sets_loaded.lua\n2\t1\n$", r.stdout)
  end)

  -- Each case runs under the CLI and under lua5.4; the texts must be equal.
  local cases = {
    { "module not found", [[show(require, "no_such_module_xyz")]], "module 'no_such_module_xyz' not found:" },
    { "module not found, called from Lua code (position prefix)",
      [[show(function() local m = require "no_such_module_xyz"; return m end)]],
      "main_script.lua:2: module 'no_such_module_xyz' not found:" },
    { "syntax error in the module", [[show(require, "syntax")]], "error loading module 'syntax' from file '" },
    { "runtime error in the module", [[show(require, "rterror")]], "attempt to index a nil value" },
    { "no argument", [[show(require)]], "bad argument #1 to 'require' (string expected, got no value)" },
    { "a table argument", [[show(require, {})]], "bad argument #1 to 'require' (string expected, got table)" },
    { "package.searchers not a table", [[
        local s = package.searchers
        package.searchers = nil
        show(require, "anything")
        package.searchers = s]], "'package.searchers' must be a table" },
  }
  for _, case in ipairs(cases) do
    it("gives exactly Lua's error text: " .. case[1], function()
      local src = "local function show(...) print((select(2, pcall(...)))) end\n"
        .. case[2] .. "\nprint('end')\n"
      local want = lua54(dir, src)
      local got = cli(dir, src)
      assert.equal(0, want.status, want.stderr)
      assert.matches(case[3], want.stdout, 1, true)
      assert.equal(0, got.status, got.stderr)
      assert.equal(want.stdout, got.stdout)
    end)
  end

  it("exits 1 with Lua's message when -l names a missing module", function()
    local r = H.cli({ "-l", "no_such_module_xyz", "-e", "print('not reached')" },
      { env = path_env(dir), cwd = dir })
    assert.equal(1, r.status)
    assert.matches("module 'no_such_module_xyz' not found:", r.stderr, 1, true)
    assert.equal("", r.stdout)
  end)
end)

describe("require under stock lua5.4", function()
  local dir
  setup(function()
    dir = moddir {
      sleepy = [[
        local aio = require "luaio"
        aio.sleep(0.01)
        return { value = "sleepy" }
      ]],
      plain = [[ return { value = "plain" } ]],
    }
  end)
  teardown(function() rmdir(dir) end)

  it("fails with an error naming 'require' when a module suspends at top level", function()
    local r = lua54(dir, [[
      local aio = require "luaio"
      print(aio.run(function()
        local bg = aio.create_task(function() aio.sleep(0.01); return "bg ok" end)
        local ok, err = pcall(require, "sleepy")
        print(ok, type(err) == "string" and err:find("require", 1, true) ~= nil)
        print(err)
        print(package.loaded.sleepy)
        print(require("plain").value)      -- plain modules still load
        return bg:await()
      end))
    ]])
    assert.equal(0, r.status, r.stderr)
    local lines = {}
    for l in r.stdout:gmatch("[^\n]*") do lines[#lines + 1] = l end
    assert.equal("false\ttrue", lines[1], r.stdout)
    assert.are_not.equal("attempt to yield across a C-call boundary", lines[2])
    assert.matches("nil\nplain\nbg ok\n$", r.stdout)
  end)
end)
