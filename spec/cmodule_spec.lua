-- C modules that drive I/O: the example module (examples/cmodule/hashpool.c)
-- is built without libluaio and without liblua5.4 and required in this
-- process -- under the luaio CLI or stock lua5.4, whichever runs busted --
-- where it finds the running luaio through the registry's C API table.
-- Then: the message of a module that finds no luaio, and a module built
-- against an installed luaio with nothing but `pkg-config luaio-module`.
local aio = require "luaio"
local H = require "helper"

local function sh(cmd)
  local f = io.popen(cmd .. " 2>&1; echo \"status=$?\"")
  local out = f:read("a")
  f:close()
  local status = tonumber(out:match("status=(%d+)%s*$"))
  return status, out:gsub("status=%d+%s*$", "")
end

local SRC = H.ROOT .. "/examples/cmodule/hashpool.c"
local NO_LUAIO = "hashpool: needs luaio, which is not loaded and could not be: "
  .. "run it with the luaio CLI, or install luaio where lua5.4 finds it "
  .. "(make install, luarocks), or add the directory of luaio/core.so to "
  .. "LUA_CPATH (module 'luaio.core' not found:"

-- Builds hashpool.so into a new directory with the given flags.
local function build(flags)
  local dir = H.tmpdir()
  local status, out = sh(("cc -shared -fPIC -Wall -Wextra -Werror -o %s %s %s")
    :format(H.quote(dir .. "/hashpool.so"), H.quote(SRC), flags))
  assert(status == 0, out)
  return dir
end

local IN_TREE = ("-I%s/runtime $(pkg-config --cflags lua5.4 libuv) $(pkg-config --libs libuv)")
  :format(H.quote(H.ROOT))

describe("a C module built against luaio_module.h", function()
  local dir, hp

  setup(function()
    dir = build(IN_TREE)
    local saved = package.cpath
    package.cpath = dir .. "/?.so;" .. saved
    hp = require "hashpool"
    package.cpath = saved
  end)

  teardown(function()
    package.loaded.hashpool = nil
    if dir then H.rmrf(dir) end
  end)

  it("links neither libluaio nor liblua5.4", function()
    local status, out = sh("nm -D --undefined-only " .. H.quote(dir .. "/hashpool.so"))
    assert.equal(0, status, out)
    assert.is_nil(out:match("luaio_"), out)
    status, out = sh("ldd " .. H.quote(dir .. "/hashpool.so"))
    assert.equal(0, status, out)
    assert.is_nil(out:match("liblua"), out)
    assert.is_nil(out:match("libluaio"), out)
  end)

  it("finds the table the running luaio published in the registry", function()
    assert.equal("userdata", type(debug.getregistry()["luaio.capi"]))
  end)

  it("runs thread-pool jobs and timers in tasks of the running loop", function()
    local a, b, c, dt = H.run(function()
      local t0 = aio.time()
      local g = aio.gather({ function() return hp.digest("hello", 1000) end,
                             function() return hp.sleep(20) end })
      return hp.digest("hello"), g[1], g[2], aio.time() - t0
    end)
    assert.equal("a430d84680aabd0b", a)
    assert.equal("07e9cbde8207d88f", b)
    assert.equal(20, c)
    assert.is_true(dt >= 0.015, tostring(dt))
  end)

  it("stops a timer when its task is cancelled, and raises CancelledError", function()
    local err = H.run(function()
      local t = aio.create_task(hp.sleep, 60000)
      aio.sleep(0.01)
      t:cancel()
      return select(2, pcall(t.await, t))
    end)
    assert.is_true(aio.is(err, aio.CancelledError))
  end)

  it("gives up pool jobs cancelled while queued or running", function()
    local results = H.run(function()
      local jobs = {}
      for i = 1, 8 do jobs[i] = aio.create_task(hp.digest, "z" .. i, 2000000) end
      aio.sleep(0)
      for i = 1, 8 do jobs[i]:cancel() end
      local r = {}
      for i = 1, 8 do
        local ok, e = pcall(jobs[i].await, jobs[i])
        r[i] = not ok and aio.is(e, aio.CancelledError)
      end
      return r
    end)
    for i = 1, 8 do assert.is_true(results[i], "job " .. i) end
  end)

  it("raises argument errors before it suspends", function()
    local e1, e2 = H.run(function()
      return select(2, pcall(hp.digest, "x", 0)), select(2, pcall(hp.sleep, -1))
    end)
    assert.equal("bad argument #2 to 'hashpool.digest' (rounds must be >= 1)", e1)
    assert.equal("bad argument #1 to 'hashpool.sleep' (ms must be >= 0)", e2)
  end)

  it("raises outside a task (a callback)", function()
    local ok, err = H.run(function()
      local f = aio.Future()
      aio.get_running_loop():call_soon(function() f:set_result({ pcall(hp.sleep, 1) }) end)
      return table.unpack(f:await())
    end)
    assert.is_false(ok)
    assert.equal("async C function: needs a running task (called outside a task)", err)
  end)
end)

describe("a C module where no luaio can be found", function()
  it("raises a Lua error that says what to do", function()
    local dir = build(IN_TREE)
    local status, out = sh(("cd / && LUA_PATH=%s LUA_CPATH=%s lua5.4 -e %s"):format(
      H.quote(dir .. "/?.lua"), H.quote(dir .. "/?.so"),
      H.quote([[local ok, e = pcall(require, "hashpool") print(ok) print(e)]])))
    H.rmrf(dir)
    assert.equal(0, status, out)
    assert.equal("false\n", out:sub(1, 6))
    assert.equal(NO_LUAIO, out:sub(7, 6 + #NO_LUAIO))
  end)
end)

describe("the C API table under a runtime no host opened (aio.run's)", function()
  local PROBE = [[
#include "luaio_module.h"
static int noop (lua_State *L, void *ud) { (void)L; (void)ud; return 0; }
/* probe() -> luaio_error, luaio_call_threadsafe's status */
static int probe (lua_State *L) {
  luaio_Runtime *rt = luaio_running(L);
  int st;
  luaio_hold(rt);
  luaio_release(rt);
  st = luaio_call_threadsafe(rt, noop, NULL);
  lua_pushstring(L, luaio_error(rt));
  lua_pushinteger(L, st);
  return 2;
}
/* spawn(fn, arg) -> Task, by luaio_spawn_task */
static int spawn (lua_State *L) {
  luaio_Runtime *rt = luaio_running(L);
  lua_State *H = luaio_state(rt);
  lua_settop(L, 2);
  lua_xmove(L, H, 2);
  if (luaio_spawn_task(rt, 1) != LUAIO_OK) return luaL_error(L, "spawn failed");
  lua_xmove(H, L, 1);
  return 1;
}
int luaopen_probe (lua_State *L) {
  static const luaL_Reg f[] = {{"probe", probe}, {"spawn", spawn}, {NULL, NULL}};
  luaio_module_init(L, "probe");
  luaL_newlib(L, f);
  return 1;
}
]]

  it("refuses cross-thread calls cleanly and still spawns tasks", function()
    local dir = H.tmpdir()
    local f = assert(io.open(dir .. "/probe.c", "w"))
    f:write(PROBE)
    f:close()
    local status, out = sh(("cc -shared -fPIC -Wall -Wextra -Werror -o %s %s %s"):format(
      H.quote(dir .. "/probe.so"), H.quote(dir .. "/probe.c"), IN_TREE))
    assert.equal(0, status, out)
    local saved = package.cpath
    package.cpath = dir .. "/?.so;" .. saved
    local probe = require "probe"
    package.cpath = saved
    package.loaded.probe = nil
    H.rmrf(dir)
    local msg, st, r = H.run(function()
      local m, s = probe.probe()
      local t = probe.spawn(function(x) aio.sleep(0) return x * 2 end, 21)
      return m, s, t:await()
    end)
    assert.equal("this runtime was not opened by a host (luaio_open): it keeps "
      .. "no error message and has no cross-thread calls", msg)
    assert.equal(1, st)
    assert.equal(42, r)
  end)
end)

describe("a C module built for a newer C API than the loaded luaio's", function()
  it("raises a Lua error that says to update luaio", function()
    local dir = H.tmpdir()
    local f = assert(io.open(dir .. "/newer.c", "w"))
    f:write([[
#include "luaio.h"
#undef LUAIO_CAPI_VERSION
#define LUAIO_CAPI_VERSION 99
#include "luaio_module.h"
int luaopen_newer (lua_State *L) {
  luaio_module_init(L, "newer");
  lua_pushboolean(L, 1);
  return 1;
}
]])
    f:close()
    local status, out = sh(("cc -shared -fPIC -Wall -Wextra -Werror -o %s %s %s"):format(
      H.quote(dir .. "/newer.so"), H.quote(dir .. "/newer.c"), IN_TREE))
    assert.equal(0, status, out)
    local saved = package.cpath
    package.cpath = dir .. "/?.so;" .. saved
    local ok, err = pcall(require, "newer")
    package.cpath = saved
    H.rmrf(dir)
    assert.is_false(ok)
    assert.equal("newer: built for luaio C API version 99, but the luaio loaded here (" ..
      aio.core.version .. ") has version 1: update luaio", err)
  end)
end)

describe("a C module built against an installed luaio", function()
  local prefix, dir

  setup(function()
    prefix = H.tmpdir()
    local status, out = sh(("make -s -C %s install PREFIX=%s"):format(H.quote(H.ROOT), H.quote(prefix)))
    assert(status == 0, out)
    local env = "PKG_CONFIG_PATH=" .. H.quote(prefix .. "/lib/pkgconfig")
    status, out = sh(("%s pkg-config --libs luaio-module"):format(env))
    assert(status == 0, out)
    assert(not out:match("lua"), "luaio-module.pc links Lua or luaio: " .. out)
    dir = build(("$(%s pkg-config --cflags --libs luaio-module)"):format(env))
  end)

  teardown(function()
    if prefix then
      sh(("make -s -C %s uninstall PREFIX=%s"):format(H.quote(H.ROOT), H.quote(prefix)))
      H.rmrf(prefix)
    end
    if dir then H.rmrf(dir) end
  end)

  it("installs luaio_module.h and luaio-module.pc", function()
    for _, f in ipairs { "include/luaio_module.h", "lib/pkgconfig/luaio-module.pc" } do
      local fh = io.open(prefix .. "/" .. f)
      assert(fh, "not installed: " .. f)
      fh:close()
    end
  end)

  local SCRIPT = [[
local aio = require "luaio"
local hp = require "hashpool"
local function main() return hp.digest("hello"), hp.sleep(5) end
if pcall(aio.get_running_loop) then print(main()) else print(aio.run(main)) end
]]

  it("runs under the installed CLI and under stock lua5.4", function()
    local script = H.script(SCRIPT)
    local status, out = sh(("cd / && LUA_CPATH=%s %s %s"):format(
      H.quote(dir .. "/?.so"), H.quote(prefix .. "/bin/luaio"), H.quote(script)))
    assert.equal(0, status, out)
    assert.equal("a430d84680aabd0b\t5\n", out)
    status, out = sh(("cd / && LUA_PATH=%s LUA_CPATH=%s lua5.4 %s"):format(
      H.quote(prefix .. "/share/lua/5.4/?.lua;" .. prefix .. "/share/lua/5.4/?/init.lua"),
      H.quote(dir .. "/?.so;" .. prefix .. "/lib/lua/5.4/?.so"), H.quote(script)))
    os.remove(script)
    assert.equal(0, status, out)
    assert.equal("a430d84680aabd0b\t5\n", out)
  end)
end)
