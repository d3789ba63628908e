-- spec/cli_spec.lua: the luaio command (SPEC.md "CLI" and the CLI parts of
-- "Running"). Every test runs the CLI as a child process, so the result
-- does not depend on whether busted runs under the CLI or lua5.4.
local H = require "helper"

local readall = H.readall

-- Runs a script through the CLI: cli(src, {args...}, opts) -> result, path.
local function cli(src, args, opts)
  local path = H.script(src)
  local argv = { path }
  for _, a in ipairs(args or {}) do argv[#argv + 1] = a end
  local r = H.cli(argv, opts)
  os.remove(path)
  return r, path
end

local function env(name, value)
  return name .. "=" .. H.quote(value)
end

-- Starts the CLI on `src` in the background with SIGINT at its default
-- disposition, waits until it prints "ready", sends SIGINT; if `second`,
-- waits for "swallowed" and sends another. A watchdog kills it after 20 s
-- (generous: a sanitizer build on a loaded CI machine is slow).
local function interrupt(src, second)
  local path = H.script(src)
  local out, err = os.tmpname(), os.tmpname()
  local script = ([[
env --default-signal=INT %s %s >%s 2>%s </dev/null &
pid=$!
(sleep 20; kill -9 $pid) >/dev/null 2>&1 &
wd=$!
waitfor() { i=0; while ! grep -q "$1" %s && [ $i -lt 1500 ]; do sleep 0.01; i=$((i+1)); done; }
waitfor ready
kill -INT $pid
%s
wait $pid
st=$?
kill $wd 2>/dev/null
exit $st
]]):format(H.quote(H.LUAIO), H.quote(path), H.quote(out), H.quote(err),
    H.quote(out), second and "waitfor swallowed; kill -INT $pid" or "")
  local _, _, code = os.execute("sh -c " .. H.quote(script))
  local r = { status = code, stdout = readall(out), stderr = readall(err) }
  os.remove(out); os.remove(err); os.remove(path)
  return r
end

local function escape(s) return (s:gsub("%p", "%%%0")) end

describe("luaio script.lua", function()
  it("sets arg as lua does and passes the script arguments as ...", function()
    local r, path = cli([[
      print(arg[0], arg[-1], #arg, arg[1], arg[2], arg[3])
      print(select("#", ...), ...)
    ]], { "a", "b c", "" })
    assert.equal(0, r.status, r.stderr)
    assert.equal(("%s\t%s\t3\ta\tb c\t\n3\ta\tb c\t\n"):format(path, H.LUAIO), r.stdout)
  end)

  it("puts options before the script at negative indices", function()
    local r, path = cli([[print(arg[-3], arg[-2], arg[-1], arg[0], arg[1])]],
      {}, nil)
    assert.equal(0, r.status, r.stderr)
    assert.equal(("nil\tnil\t%s\t%s\tnil\n"):format(H.LUAIO, path), r.stdout)
    local p = H.script([[print(arg[-3], arg[-2], arg[-1], arg[0], arg[1])]])
    r = H.cli({ "-e", "x=1", p, "z" })
    os.remove(p)
    assert.equal(0, r.status, r.stderr)
    assert.equal(("%s\t-e\tx=1\t%s\tz\n"):format(H.LUAIO, p), r.stdout)
  end)

  it("runs the main chunk as the main task: aio.sleep works at top level", function()
    local r = cli([[
      local aio = require "luaio"
      local t = aio.current_task()
      local t0 = aio.time()
      aio.sleep(0.02)
      print(t ~= nil, aio.time() - t0 >= 0.02, aio.current_task() == t)
      print(coroutine.isyieldable())
    ]])
    assert.equal(0, r.status, r.stderr)
    assert.equal("true\ttrue\ttrue\ntrue\n", r.stdout)
  end)

  it("runs tasks concurrently with the main chunk", function()
    local r = cli([[
      local aio = require "luaio"
      local t = aio.create_task(function(a, b) aio.sleep(0.01); return a .. b end, "x", "y")
      print("before")
      print(t:await())
    ]])
    assert.equal(0, r.status, r.stderr)
    assert.equal("before\nxy\n", r.stdout)
  end)

  it("exits 0 when the script returns values", function()
    local r = cli([[return 1, "two", nil]])
    assert.equal(0, r.status, r.stderr)
    assert.equal("", r.stderr)
  end)

  it("cancels pending tasks when the main chunk ends; they unwind before exit", function()
    local r = cli([[
      local aio = require "luaio"
      aio.create_task(function()
        local _ <close> = setmetatable({}, { __close = function() print("closed") end })
        local ok, err = pcall(aio.sleep, 10)
        aio.sleep(0.01)             -- cleanup may suspend
        print("unwound", aio.is(err, aio.CancelledError))
        error(err, 0)
      end)
      aio.sleep(0)
      print("main done")
    ]])
    assert.equal(0, r.status, r.stderr)
    assert.equal("main done\nunwound\ttrue\nclosed\n", r.stdout)
  end)
end)

describe("luaio errors and exit status", function()
  it("exits 1 on an uncaught error with progname, message and traceback", function()
    local r, path = cli([[
      local aio = require "luaio"
      local function inner() aio.sleep(0.001); error("boom") end
      local function outer() inner() end
      outer()
    ]])
    assert.equal(1, r.status)
    assert.matches("^" .. escape(H.LUAIO) .. ": " .. escape(path) .. ":2: boom\n", r.stderr)
    assert.matches("stack traceback:", r.stderr, 1, true)
    assert.matches(escape(path) .. ":2: in", r.stderr)      -- where it failed
    assert.matches(escape(path) .. ":3: in", r.stderr)      -- who called it
  end)

  it("prints an error object through __tostring", function()
    local r = cli([[error(setmetatable({}, { __tostring = function() return "custom error object" end }))]])
    assert.equal(1, r.status)
    assert.matches(": custom error object\n", r.stderr, 1, true)
  end)

  it("describes an error value that is not printable as lua does", function()
    local r = cli([[error({})]])
    assert.equal(1, r.status)
    assert.matches("(error object is a table value)", r.stderr, 1, true)
  end)

  it("exits 1 when the main task fails after awaiting a failed task", function()
    local r = cli([[
      local aio = require "luaio"
      local t = aio.create_task(function() aio.sleep(0); error("child failed", 0) end)
      t:await()
    ]])
    assert.equal(1, r.status)
    assert.matches("child failed", r.stderr, 1, true)
  end)

  it("still cancels and unwinds other tasks when the main task fails", function()
    local r = cli([[
      local aio = require "luaio"
      aio.create_task(function()
        local _ <close> = setmetatable({}, { __close = function() print("bg closed") end })
        aio.sleep(10)
      end)
      aio.sleep(0)
      error("main failed", 0)
    ]])
    assert.equal(1, r.status)
    assert.matches("main failed", r.stderr, 1, true)
    assert.equal("bg closed\n", r.stdout)
  end)

  it("reports a never-retrieved task error but keeps exit status 0", function()
    local r = cli([[
      local aio = require "luaio"
      aio.create_task(function() error("bg failure", 0) end)
      aio.sleep(0.01)
      print("main ok")
    ]])
    assert.equal(0, r.status, r.stderr)
    assert.equal("main ok\n", r.stdout)
    assert.matches("bg failure", r.stderr, 1, true)
    assert.matches("never retrieved", r.stderr, 1, true)
  end)

  it("exits 1 with a message when the script does not exist", function()
    local r = H.cli({ "/nonexistent/dir/no_such_script.lua" })
    assert.equal(1, r.status)
    assert.matches("cannot open /nonexistent/dir/no_such_script.lua", r.stderr, 1, true)
    assert.equal("", r.stdout)
  end)

  it("exits 1 on a syntax error without running anything", function()
    local r, path = cli("print('ran')\nlocal x = = 1\n")
    assert.equal(1, r.status)
    assert.matches(escape(path) .. ":2: unexpected symbol near '='", r.stderr)
    assert.equal("", r.stdout)
  end)

  it("raises a deadlock error instead of hanging when SIGINT is ignored", function()
    local p = H.script([[
      print("start")
      require("luaio").Future():await()
    ]])
    local out, err = os.tmpname(), os.tmpname()
    local _, _, code = os.execute(("timeout 5 env --ignore-signal=INT %s %s </dev/null >%s 2>%s")
      :format(H.quote(H.LUAIO), H.quote(p), H.quote(out), H.quote(err)))
    local stdout, stderr = readall(out), readall(err)
    os.remove(out); os.remove(err); os.remove(p)
    assert.equal(1, code, stderr)
    assert.equal("start\n", stdout)
    assert.matches("deadlock", stderr, 1, true)
  end)
end)

describe("os.exit in the CLI", function()
  it("exits with the given status", function()
    assert.equal(3, cli([[os.exit(3)]]).status)
    assert.equal(0, cli([[os.exit(true)]]).status)
    assert.equal(1, cli([[os.exit(false)]]).status)
  end)

  it("flushes what was written before exiting", function()
    local r = cli([[io.write("partial"); os.exit(4)]])
    assert.equal(4, r.status)
    assert.equal("partial", r.stdout)
  end)

  it("works after suspending, with close = true", function()
    local r = cli([[
      local aio = require "luaio"
      aio.sleep(0.001)
      io.write("x")
      os.exit(6, true)
    ]])
    assert.equal(6, r.status, r.stderr)
    assert.equal("x", r.stdout)
    assert.equal("", r.stderr)
  end)

  it("works from a task other than the main task, with close = true", function()
    local r = cli([[
      local aio = require "luaio"
      local t = aio.create_task(function() aio.sleep(0.001); io.write("bye"); os.exit(5, true) end)
      t:await()
      print("not reached")
    ]])
    assert.equal(5, r.status, r.stderr)
    assert.equal("bye", r.stdout)
    assert.equal("", r.stderr)
  end)
end)

describe("luaio options", function()
  it("-e runs code in the main task, several in order", function()
    local r = H.cli({ "-e", "x = 1", "-e", "aio = require 'luaio' aio.sleep(0.001) x = x + 1",
                      "-e", "print(x, aio.current_task() ~= nil)" })
    assert.equal(0, r.status, r.stderr)
    assert.equal("2\ttrue\n", r.stdout)
  end)

  it("LUAIO_GC sets the collector: luaio's defaults for numbers left out, a warning for an unknown mode", function()
    local probe = { "-e", "print(collectgarbage('setpause', 100), collectgarbage('setstepmul', 100))" }
    local function gc(value)
      local r = H.cli(probe, value and { env = env("LUAIO_GC", value) } or nil)
      assert.equal(0, r.status, r.stderr)
      return r.stdout, r.stderr
    end
    assert.equal("400\t200\n", (gc(nil)))
    assert.equal("800\t200\n", (gc("incremental,800")))
    assert.equal("800\t300\n", (gc("incremental,800,300")))
    assert.equal("400\t200\n", (gc("incremental")))
    local out, err = gc("fast please")
    assert.equal("400\t200\n", out)
    assert.matches("LUAIO_GC: unknown mode 'fast please' %(the default is used%)", err)
    local r = H.cli({ "-e", "print(collectgarbage('incremental'))" }, { env = env("LUAIO_GC", "generational") })
    assert.equal("generational\n", r.stdout)
  end)

  it("-e attached to its argument works (-eCODE)", function()
    local r = H.cli({ "-eprint('attached')" })
    assert.equal(0, r.status, r.stderr)
    assert.equal("attached\n", r.stdout)
  end)

  it("runs LUA_INIT, -e, -l and the script in that order", function()
    local dir = os.tmpname()
    os.remove(dir)
    os.execute("mkdir -p " .. H.quote(dir))
    local f = assert(io.open(dir .. "/lmod.lua", "wb"))
    f:write("ORDER[#ORDER + 1] = 'l'; return { loaded = true }")
    f:close()
    local p = H.script([[
      ORDER[#ORDER + 1] = "script"
      print(table.concat(ORDER, ","), lmod.loaded)
    ]])
    local r = H.cli({ "-e", "ORDER[#ORDER + 1] = 'e1'", "-l", "lmod",
                      "-e", "ORDER[#ORDER + 1] = 'e2'", p },
      { env = env("LUA_INIT", "ORDER = { 'init' }") .. " " ..
              env("LUA_PATH", dir .. "/?.lua;" .. (os.getenv("LUA_PATH") or ";")) })
    os.remove(p)
    os.execute("rm -rf " .. H.quote(dir))
    assert.equal(0, r.status, r.stderr)
    assert.equal("init,e1,l,e2,script\ttrue\n", r.stdout)
  end)

  it("-e or -l without an argument exits 1 with usage", function()
    for _, opt in ipairs { "-e", "-l" } do
      local r = H.cli({ opt })
      assert.equal(1, r.status, opt)
      assert.matches("'" .. opt .. "' needs argument", r.stderr, 1, true)
      assert.matches("usage:", r.stderr, 1, true)
    end
  end)

  it("an unknown option exits 1 with usage on stderr", function()
    local r = H.cli({ "-x", "ignored.lua" })
    assert.equal(1, r.status)
    assert.matches("unrecognized option '-x'", r.stderr, 1, true)
    assert.matches("usage:", r.stderr, 1, true)
    assert.equal("", r.stdout)
  end)

  it("-h prints the usage", function()
    local r = H.cli({ "-h" })
    local all = r.stdout .. r.stderr
    assert.matches("usage:", all, 1, true)
    assert.matches("-e stat", all, 1, true)
  end)

  it("-v prints the version and exits 0", function()
    local r = H.cli({ "-v" })
    assert.equal(0, r.status, r.stderr)
    assert.matches("^luaio %d+%.%d+%.%d+[^ ]* %(Lua 5%.4%.%d+[^(]*, libuv %d+%.%d+%.%d+[^)]*%)\n$", r.stdout)
  end)

  -- The build's record of which Lua the CLI links (tools/lua_build.sh);
  -- a build that links the installed one as it is (LUA_BUILD=0) has none.
  it("-v names the Lua the CLI was built with", function()
    local f = io.open((H.LUAIO:match("^(.*)/[^/]*$") or ".") .. "/lua/FROM")
    local from = f and f:read("l")
    if f then f:close() end
    local r = H.cli({ "-v" })
    assert.equal(0, r.status, r.stderr)
    local said = r.stdout:match("^luaio %S+ %(Lua 5%.4%.%d+ %[(.-)%], libuv ")
    if from == nil then
      assert.is_nil(said, r.stdout)
    elseif from:match("^built: ") then
      assert.equal(from:match("^built: (Debian's lua5%.4 %S+), with %-flto$") .. ", LTO", said)
    else
      assert.matches("^installed: ", from)
      assert.equal("the installed liblua5.4.a", said)
    end
  end)

  it("-v with -e prints the version and runs the code", function()
    local r = H.cli({ "-v", "-e", "print('after')" })
    assert.equal(0, r.status, r.stderr)
    assert.matches("^luaio [^\n]*\nafter\n$", r.stdout)
  end)

  it("-- stops option handling", function()
    local p = H.script([[print(arg[1], arg[2], ...)]])
    local r = H.cli({ "--", p, "-e", "-x" })
    os.remove(p)
    assert.equal(0, r.status, r.stderr)
    assert.equal("-e\t-x\t-e\t-x\n", r.stdout)
  end)

  it("- runs stdin as the script, with arguments", function()
    local r = H.cli({ "-", "a", "b" }, { stdin = [[
      local aio = require "luaio"
      aio.sleep(0.001)
      print(arg[0], arg[1], select("#", ...), ...)
    ]] })
    assert.equal(0, r.status, r.stderr)
    assert.equal("-\ta\t2\ta\tb\n", r.stdout)
  end)

  it("with no script and stdin not a terminal, runs stdin", function()
    local r = H.cli({}, { stdin = "print('from stdin')" })
    assert.equal(0, r.status, r.stderr)
    assert.equal("from stdin\n", r.stdout)
  end)

  it("does not read stdin after -e with no script", function()
    local r = H.cli({ "-e", "print('e only')", "--" }, { stdin = "print('STDIN RAN')" })
    assert.equal(0, r.status, r.stderr)
    assert.equal("e only\n", r.stdout)
  end)

  it("-W turns warnings on", function()
    local r = H.cli({ "-W", "-e", "warn('careful now')" })
    assert.equal(0, r.status, r.stderr)
    assert.matches("Lua warning: careful now", r.stderr, 1, true)
    r = H.cli({ "-e", "warn('careful now')" })
    assert.equal(0, r.status, r.stderr)
    assert.equal("", r.stderr)
  end)
end)

describe("LUA_INIT", function()
  it("runs inside the main task before the script", function()
    local r = cli([[
      local aio = require "luaio"
      print(INIT_TASK ~= nil, INIT_TASK == aio.current_task(), INIT_SLEPT)
    ]], {}, { env = env("LUA_INIT",
      "local aio = require 'luaio'; aio.sleep(0.001); INIT_SLEPT = true; INIT_TASK = aio.current_task()") })
    assert.equal(0, r.status, r.stderr)
    assert.equal("true\ttrue\ttrue\n", r.stdout)
  end)

  it("prefers LUA_INIT_5_4 over LUA_INIT", function()
    local r = H.cli({ "-e", "print(WHICH)" },
      { env = env("LUA_INIT", "WHICH = 'plain'") .. " " .. env("LUA_INIT_5_4", "WHICH = '5_4'") })
    assert.equal(0, r.status, r.stderr)
    assert.equal("5_4\n", r.stdout)
  end)

  it("accepts the @file form", function()
    local init = H.script("FROM_FILE = 'yes'; require('luaio').sleep(0.001)")
    local r = H.cli({ "-e", "print(FROM_FILE)" }, { env = env("LUA_INIT", "@" .. init) })
    os.remove(init)
    assert.equal(0, r.status, r.stderr)
    assert.equal("yes\n", r.stdout)
  end)

  it("an error in LUA_INIT exits 1 without running the script", function()
    local r = H.cli({ "-e", "print('not reached')" }, { env = env("LUA_INIT", "error('init broke', 0)") })
    assert.equal(1, r.status)
    assert.matches("init broke", r.stderr, 1, true)
    assert.equal("", r.stdout)
  end)

  it("-E ignores LUA_INIT and LUA_PATH", function()
    local e = env("LUA_INIT", "print('INIT RAN')") .. " " .. env("LUA_PATH", "/marker_dir/?.lua")
    local r = H.cli({ "-E", "-e", "print(package.path:find('marker_dir', 1, true) == nil)" }, { env = e })
    assert.equal(0, r.status, r.stderr)
    assert.equal("true\n", r.stdout)
    -- without -E both are honoured
    r = H.cli({ "-e", "print(package.path:find('marker_dir', 1, true) ~= nil)" }, { env = e })
    assert.equal(0, r.status, r.stderr)
    assert.equal("INIT RAN\ntrue\n", r.stdout)
  end)

  it("-E still lets the script use luaio", function()
    local r = H.cli({ "-E", "-e", "local aio = require 'luaio'; aio.sleep(0.001); print('ok')" })
    assert.equal(0, r.status, r.stderr)
    assert.equal("ok\n", r.stdout)
  end)
end)

describe("Ctrl-C in the CLI", function()
  it("cancels the main task; tasks unwind; exit status 130", function()
    local r = interrupt([[
      local aio = require "luaio"
      aio.create_task(function()
        local _ <close> = setmetatable({}, { __close = function() print("bg cleanup") end })
        aio.sleep(10)
      end)
      local _ <close> = setmetatable({}, { __close = function() print("main cleanup") end })
      aio.sleep(0)
      print("ready"); io.stdout:flush()
      aio.sleep(10)
      print("not reached")
    ]])
    assert.equal(130, r.status, r.stderr)
    assert.matches("main cleanup", r.stdout, 1, true)
    assert.matches("bg cleanup", r.stdout, 1, true)
    assert.not_matches("not reached", r.stdout, 1, true)
    assert.matches("interrupted", r.stderr, 1, true)
  end)

  it("lets the main task's cleanup suspend before exiting 130", function()
    local r = interrupt([[
      local aio = require "luaio"
      print("ready"); io.stdout:flush()
      local ok, err = pcall(aio.sleep, 10)
      aio.sleep(0.01)
      print("cleaned", aio.is(err, aio.CancelledError))
      error(err, 0)
    ]])
    assert.equal(130, r.status, r.stderr)
    assert.matches("cleaned\ttrue", r.stdout, 1, true)
  end)

  it("waits for Ctrl-C when the main task sleeps forever", function()
    local r = interrupt([[
      local aio = require "luaio"
      local _ <close> = setmetatable({}, { __close = function() print("cleanup") end })
      print("ready"); io.stdout:flush()
      aio.sleep(math.huge)
    ]])
    assert.equal(130, r.status, r.stderr)
    assert.matches("cleanup", r.stdout, 1, true)
  end)

  it("a second Ctrl-C kills a script that swallows the first", function()
    local r = interrupt([[
      local aio = require "luaio"
      print("ready"); io.stdout:flush()
      while true do
        local ok = pcall(aio.sleep, 10)
        if not ok then print("swallowed"); io.stdout:flush() end
      end
    ]], true)
    assert.equal(130, r.status, r.stderr)
    assert.matches("swallowed", r.stdout, 1, true)
  end)
end)

describe("C modules in the CLI", function()
  -- The CLI links Lua statically (Debian's lua5.4 built by
  -- tools/lua_build.sh, with LTO, or the installed liblua5.4.a) and
  -- exports its functions; a module built against liblua5.4.so must bind
  -- to the CLI's copy, not to a second Lua.
  it("loads a module linked against liblua5.4.so and shares one Lua with it", function()
    local dir, cleanup = H.build_cmodule("cmod", [[
#include <lua.h>
#include <lauxlib.h>
static int twice (lua_State *L) {
  lua_pushinteger(L, 2 * luaL_checkinteger(L, 1));
  return 1;
}
static int call (lua_State *L) {           /* calls back into Lua */
  luaL_checktype(L, 1, LUA_TFUNCTION);
  lua_call(L, lua_gettop(L) - 1, 1);
  return 1;
}
static int registry_is_shared (lua_State *L) {
  lua_getfield(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
  lua_getfield(L, -1, "cmod");
  lua_pushboolean(L, lua_istable(L, -1));
  return 1;
}
int luaopen_cmod (lua_State *L) {
  luaL_Reg f[] = {{"twice", twice}, {"call", call},
                  {"registry_is_shared", registry_is_shared}, {NULL, NULL}};
  luaL_newlib(L, f);
  return 1;
}
]])
    local so = dir .. "/cmod.so"
    local p = assert(io.popen("readelf -d " .. H.quote(so)))
    local dyn = p:read("a")
    p:close()
    assert.matches("liblua5.4.so", dyn, 1, true)   -- linked against the shared Lua
    local r = cli([[
      local aio = require "luaio"
      local m = require "cmod"
      assert(m.twice(21) == 42)
      assert(m.registry_is_shared())
      local v = aio.run(function()
        aio.sleep(0)
        return m.call(function(x) return x + 1 end, 41)
      end)
      collectgarbage()
      print("ok", v)
    ]], nil, { env = env("LUA_CPATH", dir .. "/?.so;;") })
    cleanup()
    assert.equal(0, r.status, r.stderr)
    assert.equal("ok\t42\n", r.stdout)
  end)
end)
