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
#include <pthread.h>
#include <time.h>
#include "luaio_module.h"
static int ran;                        /* the loop thread's */
static int mark (lua_State *L, void *ud) { (void)L; (void)ud; ran++; return 0; }
/* probe() -> luaio_error, luaio_call_threadsafe's status */
static int probe (lua_State *L) {
  luaio_Runtime *rt = luaio_running(L);
  int st;
  luaio_hold(rt);
  luaio_release(rt);
  st = luaio_call_threadsafe(rt, mark, NULL);
  lua_pushstring(L, luaio_error(rt));
  lua_pushinteger(L, st);
  return 2;
}
static int ran_count (lua_State *L) { lua_pushinteger(L, ran); return 1; }
/* a thread that calls now, and again after ms */
static luaio_Runtime *late_rt;
static long late_ms;
static int late_st[2];
static pthread_t late_th;
static void *late_main (void *arg) {
  struct timespec ts = { late_ms / 1000, (late_ms % 1000) * 1000000L };
  (void)arg;
  late_st[0] = luaio_call_threadsafe(late_rt, mark, NULL);
  nanosleep(&ts, NULL);
  late_st[1] = luaio_call_threadsafe(late_rt, mark, NULL);
  return NULL;
}
static int late (lua_State *L) {
  late_rt = luaio_running(L);
  late_ms = (long)luaL_checkinteger(L, 1);
  luaio_hold(late_rt);                 /* makes the cross-thread state */
  luaio_release(late_rt);
  if (pthread_create(&late_th, NULL, late_main, NULL) != 0)
    return luaL_error(L, "pthread_create failed");
  return 0;
}
static int join (lua_State *L) {
  pthread_join(late_th, NULL);
  lua_pushinteger(L, late_st[0]);
  lua_pushinteger(L, late_st[1]);
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
  static const luaL_Reg f[] = {{"probe", probe}, {"spawn", spawn},
    {"ran", ran_count}, {"late", late}, {"join", join}, {NULL, NULL}};
  luaio_module_init(L, "probe");
  luaL_newlib(L, f);
  return 1;
}
]]
  local probe

  setup(function()
    local dir = H.tmpdir()
    local f = assert(io.open(dir .. "/probe.c", "w"))
    f:write(PROBE)
    f:close()
    local status, out = sh(("cc -shared -fPIC -Wall -Wextra -Werror -o %s %s %s"):format(
      H.quote(dir .. "/probe.so"), H.quote(dir .. "/probe.c"), IN_TREE))
    assert(status == 0, out)
    local saved = package.cpath
    package.cpath = dir .. "/?.so;" .. saved
    probe = require "probe"
    package.cpath = saved
    package.loaded.probe = nil
    H.rmrf(dir)
  end)

  it("takes cross-thread calls, keeps no error message and spawns tasks", function()
    local before = probe.ran()
    local msg, st, r, ran = H.run(function()
      local m, s = probe.probe()
      local t = probe.spawn(function(x) aio.sleep(0) return x * 2 end, 21)
      for _ = 1, 1000 do
        if probe.ran() > before then break end
        aio.sleep(0.001)
      end
      return m, s, t:await(), probe.ran()
    end)
    assert.equal("this runtime was not opened by a host (luaio_open): it keeps "
      .. "no error message", msg)
    assert.equal(0, st)
    assert.equal(42, r)
    assert.equal(before + 1, ran)
  end)

  it("fails a thread's call once the runtime is gone, without touching it", function()
    local before = probe.ran()
    H.run(function()
      probe.late(100)
      for _ = 1, 1000 do
        if probe.ran() > before then return end
        aio.sleep(0.001)
      end
      error("the thread's first call did not run")
    end)
    local st1, st2 = probe.join()        -- (after aio.run returned)
    assert.equal(0, st1)                 -- LUAIO_OK: ran on the loop
    assert.equal(1, st2)                 -- LUAIO_ERROR: the runtime was gone
    assert.equal(before + 1, probe.ran())
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

-- hashpool.digest_thread: a job on a thread of the module's own, which
-- resolves with luaio_resolve_threadsafe under a hold -- in a runtime no
-- host opened (H.run's, as aio.run's).
describe("a C module's own thread under a runtime no host opened", function()
  local dir, hp
  local wall = aio.core.wall_time

  setup(function()
    dir = build(IN_TREE)
    local saved = package.cpath
    package.cpath = dir .. "/?.so;" .. saved
    package.loaded.hashpool = nil
    hp = require "hashpool"
    package.cpath = saved
  end)

  teardown(function()
    package.loaded.hashpool = nil
    if dir then H.rmrf(dir) end
  end)

  -- waits (in a fresh runtime) until the module's threads are done
  local function settle_threads()
    H.run(function()
      for _ = 1, 500 * H.SLOW do
        if hp.threads() == 0 then return end
        aio.sleep(0.01)
      end
      error("the module's threads did not end")
    end)
  end

  it("resolves from the thread; the hold keeps the loop waiting for it", function()
    local r = H.run(function()
      return aio.wait_for(aio.create_task(hp.digest_thread, "hello", 1000, 50),
                          2 * H.SLOW)
    end)
    assert.equal("07e9cbde8207d88f", r)
  end)

  it("gives each task its digest or CancelledError when cancels race completions", function()
    local _, refused = hp.threads()
    local won, lost, other = H.run(function()
      local w, l, o = 0, 0, {}
      for i = 1, 100 do
        local t = aio.create_task(hp.digest_thread, "r" .. i, 20000)
        if i % 2 == 0 then aio.sleep(0) end
        t:cancel()
        local ok, e = pcall(t.await, t)
        if ok and #e == 16 then w = w + 1
        elseif not ok and aio.is(e, aio.CancelledError) then l = l + 1
        else o[#o + 1] = tostring(e) end
      end
      return w, l, o
    end)
    assert.same({}, other)
    assert.equal(100, won + lost)
    assert.is_true(lost > 0)
    -- the runtime's end waited for the threads: all joined, none refused
    assert.same({ 0, refused }, { hp.threads() })
  end)

  it("waits at its end for a thread that finishes within shutdown_timeout", function()
    local _, refused = hp.threads()
    local t0 = wall()
    local got = H.reports(function()
      aio.create_task(hp.digest_thread, "x", 10, 150)
      aio.sleep(0.01)
    end)
    assert.is_true(wall() - t0 >= 0.12, tostring(wall() - t0))
    assert.same({}, got)
    assert.same({ 0, refused }, { hp.threads() })
  end)

  it("ends after shutdown_timeout while a thread still holds; the thread's late resolve fails", function()
    local _, refused = hp.threads()
    local t0 = wall()
    local got = H.reports(function()
      aio.create_task(hp.digest_thread, "x", 10, 1000)
      aio.sleep(0.01)
    end, { shutdown_timeout = 0.05 })
    local dt = wall() - t0
    local msgs = {}
    for i, ctx in ipairs(got) do msgs[i] = ctx.message end
    assert.same({
      "1 luaio_hold still taken at loop close after 0.05 s (a C module's "
        .. "thread may still call back): the loop closes anyway, and that "
        .. "thread's cross-thread calls fail from now on (LUAIO_ERROR)",
      "1 async C operation still not resolved at loop close: luaio_resolve "
        .. "discards it later (luaio_resolve_threadsafe returns LUAIO_ERROR)",
    }, msgs)
    assert.is_true(dt < 0.9, tostring(dt))
    assert.same({ 1, refused }, { hp.threads() })   -- still blocked
    settle_threads()
    assert.same({ 0, refused + 1 }, { hp.threads() })  -- told LUAIO_ERROR
  end)
end)

-- The CLI's own runtime: its exit is a shutdown like aio.run's end.
describe("the luaio CLI's exit with a C module's thread holding its runtime", function()
  local dir
  setup(function() dir = build(IN_TREE) end)
  teardown(function() if dir then H.rmrf(dir) end end)

  local SCRIPT = [[
local aio = require "luaio"
local hp = require "hashpool"
aio.create_task(function()
  local ok, e = pcall(hp.digest_thread, "x", 10, %d)
  print("task", ok, aio.is(e, aio.CancelledError))
end)
aio.sleep(0.01)
print("main done")
]]

  local function run(block, timeout)
    local script = H.script(SCRIPT:format(block))
    local t0 = aio.core.wall_time()
    local r = H.cli({ script }, { env = ("LUA_CPATH=%s LUAIO_SHUTDOWN_TIMEOUT=%s")
      :format(H.quote(dir .. "/?.so;" .. H.ROOT .. "/build/lib/?.so;;"), timeout) })
    os.remove(script)
    return r, aio.core.wall_time() - t0
  end

  it("waits for the thread to give its hold back", function()
    local r, dt = run(200, 5)
    assert.equal(0, r.status, r.stderr)
    assert.equal("main done\ntask\tfalse\ttrue\n", r.stdout)
    assert.equal("", r.stderr)
    assert.is_true(dt >= 0.2, tostring(dt))
  end)

  it("exits after shutdown_timeout, reporting the hold, while the thread is blocked", function()
    local r, dt = run(3000, 0.1)
    assert.equal(0, r.status, r.stderr)
    assert.equal("main done\ntask\tfalse\ttrue\n", r.stdout)
    assert.truthy(r.stderr:find("1 luaio_hold still taken at loop close after 0.1 s", 1, true), r.stderr)
    assert.is_true(dt < 2, tostring(dt))
  end)
end)
