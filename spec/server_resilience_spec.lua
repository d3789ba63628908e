-- spec/server_resilience_spec.lua: a server keeps serving when its
-- handlers fail or forget close(), when it runs out of file descriptors,
-- and when one new connection cannot be handed to its handler (issue 18):
--   * a connection's streams are closed when its handler's task ends,
--     however it ends (returned, raised, cancelled), as writer:close()
--     does: what the handler wrote still goes out;
--   * an accept error (EMFILE: out of descriptors) is reported to the
--     loop's exception handler once per burst, accepting pauses and
--     resumes, and the clients waiting meanwhile are served;
--   * a connection whose task cannot be created is closed and reported;
--     the others of its batch are served and wait_closed() returns.
-- The collector is stopped where a collection would hide the bug: a small
-- Lua heap never starts one, and none of this may depend on one.
local aio = require "luaio"
local H = require "helper"

local HOST = "127.0.0.1"

-- Runs fn with the collector stopped (restarted however fn ends).
local function without_gc(fn)
  collectgarbage("stop")
  local ok, err = pcall(fn)
  collectgarbage("restart")
  if not ok then error(err, 0) end
end

-- Runs fn as the main task of a fresh loop with a watchdog; returns the
-- contexts the loop's exception handler was given (also at loop close).
local function reports_of(fn, limit)
  return H.reports(function()
    local ok, err = pcall(aio.wait_for, fn, (limit or 5) * H.SLOW)
    if not ok and aio.is(err, aio.TimeoutError) then
      error("watchdog: the test was stuck", 0)
    end
    if not ok then error(err, 0) end
  end)
end

-- Waits (a little) until this process has at most n descriptors open.
local function fds_back_to(n)
  local now
  for _ = 1, 50 * H.SLOW do
    now = H.open_fds()
    if now <= n then return now end
    aio.sleep(0.01)
  end
  return now
end

local warm_up = H.warm_up

-- Sends line, returns the reply line (nil at EOF) and then what follows
-- it up to EOF.
local function ask(port, line)
  local r, w = aio.open_connection(HOST, port)
  w:write(line)
  local reply = r:readline()
  local rest = r:read()
  w:close()
  w:wait_closed()
  return reply, rest
end

-- Sends line, returns everything the server sends back up to EOF.
local function fetch(port, line)
  local r, w = aio.open_connection(HOST, port)
  w:write(line)
  local all = r:read()
  w:close()
  w:wait_closed()
  return all
end

describe("a connection's streams are closed when its handler ends", function()
  it("when the handler raised: no descriptor is kept, later clients are served, "
     .. "and the error still reaches the exception handler", function()
    local reports = reports_of(function()
      without_gc(function()
        warm_up()
        local srv = aio.start_server(function(r, w)
          local line = r:readline()
          w:write("got " .. line)
          if line == "fail\n" then error("the handler failed on purpose") end
          w:close()
        end, HOST, 0)
        local _, port = srv:getsockname()
        local fds = H.open_fds()
        for _ = 1, 20 do
          local reply, rest = ask(port, "fail\n")
          assert.equal("got fail\n", reply)   -- written before the error: sent
          assert.equal("", rest)              -- then EOF: the server closed it
        end
        local now = fds_back_to(fds)
        assert.is_true(now <= fds, ("descriptors kept: %d before, %d after"):format(fds, now))
        for i = 1, 5 do
          assert.equal("got ok " .. i .. "\n", (ask(port, "ok " .. i .. "\n")))
        end
        srv:close()
        srv:wait_closed()
      end)
    end)
    local failed = 0
    for _, ctx in ipairs(reports) do
      assert.equal("Task exception was never retrieved", ctx.message)
      assert.matches("the handler failed on purpose", tostring(ctx.exception))
      failed = failed + 1
    end
    assert.equal(20, failed)
  end)

  it("when the handler returned without close(): everything it wrote arrives, "
     .. "then EOF; wait_closed() returns", function()
    local big = ("0123456789abcdef"):rep(64 * 1024)     -- 1 MiB, not drained
    H.closes_fds(function()
      without_gc(function()
        local srv = aio.start_server(function(r, w)
          if r:readline() == "big\n" then w:write(big) else w:write("small\n") end
        end, HOST, 0)
        local _, port = srv:getsockname()
        for _ = 1, 3 do
          local all = fetch(port, "big\n")
          assert.equal(#big, #all)
          assert.is_true(all == big, "the data arrived intact")
          assert.equal("small\n", (ask(port, "hi\n")))
        end
        srv:close()
        srv:wait_closed()                     -- its connections are closed too
      end)
    end, 10, warm_up)
  end)

  it("when the handler was cancelled: what it wrote arrives, then EOF", function()
    H.closes_fds(function()
      without_gc(function()
        local handlers = {}
        local srv = aio.start_server(function(r, w)
          handlers[#handlers + 1] = aio.current_task()
          w:write("hello\n")
          r:readline()                        -- cancelled here
        end, HOST, 0)
        local _, port = srv:getsockname()
        local r, w = aio.open_connection(HOST, port)
        assert.equal("hello\n", r:readline())
        handlers[1]:cancel()
        assert.is_nil(r:readline())           -- EOF
        assert.is_true(handlers[1]:cancelled())
        w:close()
        w:wait_closed()
        srv:close()
        srv:wait_closed()
      end)
    end, nil, warm_up)
  end)

  it("a handler's own close() and wait_closed() are not disturbed", function()
    local reports = reports_of(function()
      local srv = aio.start_server(function(r, w)
        w:write("bye " .. r:readline())
        w:close()
        w:wait_closed()
        assert.is_true(w:is_closing())
      end, HOST, 0)
      local _, port = srv:getsockname()
      assert.equal("bye now\n", (ask(port, "now\n")))
      srv:close()
      srv:wait_closed()
    end)
    assert.same({}, reports)
  end)

  it("a handler that waits for the task it handed its streams to is served", function()
    H.closes_fds(function()
      local srv = aio.start_server(function(r, w)
        aio.create_task(function()
          aio.sleep(0.01)
          w:write("later " .. r:readline())
        end):await()
      end, HOST, 0)
      local _, port = srv:getsockname()
      assert.equal("later on\n", (ask(port, "on\n")))
      srv:close()
      srv:wait_closed()
    end, nil, warm_up)
  end)
end)

------------------------------------------------------------------ children
-- A luaio child process running src under `ulimit -n nofile`; its first
-- line on stdout is the port it serves on.  -> process, port
local function serve_in_child(src, nofile)
  local path = H.script(src)
  local p = aio.create_subprocess_shell(
    ("ulimit -n %d && exec %s %s"):format(nofile, H.quote(H.LUAIO), H.quote(path)),
    { stdout = aio.PIPE, stderr = aio.DEVNULL })
  local line = p.stdout:readline()
  os.remove(path)
  local port = line and tonumber(line:match("^PORT (%d+)"))
  if not port then
    p:kill()
    p:wait()
    error("the child did not start: " .. tostring(line), 0)
  end
  return p, port
end

-- Runs fn(p, port) and makes sure the child is gone afterwards.
local function with_child(p, port, fn)
  local ok, err = pcall(fn, p, port)
  if p.returncode == nil then
    p:kill()
    p:wait()
  end
  if not ok then error(err, 0) end
end

-- A client that makes the server's handler fail with ECONNRESET: it asks
-- for more than it reads, and closes with the rest unread (a reset).
local function reset_client(port)
  local r, w = aio.open_connection(HOST, port, { limit = 1 })
  w:write("big\n")
  r:read(1)
  w:close()
  w:wait_closed()
end

-- The child's server: "big" gets 256 KiB and then a read (that fails
-- with ECONNRESET when the client resets), "quit" stops the server, any
-- other line is answered.  No collection ever runs in it.
local RESET_SERVER = [[
local aio = require "luaio"
collectgarbage("stop")
aio.run(function()
  local big = ("x"):rep(256 * 1024)
  local srv
  srv = aio.start_server(function(r, w)
    local line = r:readline()
    if line == "big\n" then
      w:write(big)
      r:readline()
    elseif line == "quit\n" then
      srv:close()
    elseif line then
      w:write("pong " .. line)
    end
  end, "127.0.0.1", 0)
  local _, port = srv:getsockname()
  print("PORT " .. port)
  io.stdout:flush()
  srv:serve_forever()
end)
]]

describe("a server with few file descriptors", function()
  it("keeps serving after many clients that reset (ulimit -n 64)", function()
    H.guarded(function()
      local p, port = serve_in_child(RESET_SERVER, 64)
      with_child(p, port, function()
        for _ = 1, 150 do pcall(reset_client, port) end
        for i = 1, 20 do
          local ok, reply = pcall(ask, port, "ping " .. i .. "\n")
          assert.is_true(ok, tostring(reply))
          assert.equal("pong ping " .. i .. "\n", reply)
        end
        ask(port, "quit\n")
        assert.equal(0, p:wait())
      end)
    end, nil, 30)
  end)

  it("reports EMFILE at accept once, pauses, and serves the waiting client "
     .. "when descriptors free up", function()
    H.guarded(function()
      local p, port = serve_in_child([[
local aio = require "luaio"
aio.run(function()
  local reports = {}
  aio.get_running_loop():set_exception_handler(function(_, ctx)
    reports[#reports + 1] = ctx
    print("REPORT " .. tostring(ctx.message) .. " | " .. tostring(ctx.exception))
    io.stdout:flush()
  end)
  local srv
  srv = aio.start_server(function(r, w)
    local line = r:readline()
    if line == "quit\n" then srv:close() else w:write("pong " .. line) end
  end, "127.0.0.1", 0)
  local _, port = srv:getsockname()
  local files = {}                     -- every descriptor left is taken
  while true do
    local f = io.open("/dev/null")
    if not f then break end
    files[#files + 1] = f
  end
  print("PORT " .. port)
  io.stdout:flush()
  while #reports == 0 do aio.sleep(0.01) end
  aio.sleep(0.5)                       -- accepting still fails meanwhile
  for _, f in ipairs(files) do f:close() end
  srv:wait_closed()
  print("REPORTS " .. #reports)
end)
]], 32)
      with_child(p, port, function()
        local reply = ask(port, "waiting\n")
        assert.equal("pong waiting\n", reply)
        ask(port, "quit\n")
        assert.equal(0, p:wait())
        local out = p.stdout:read()
        local report = out:match("REPORT ([^\n]*)")
        assert.is_string(report, out)
        assert.matches("EMFILE", report)
        assert.matches("too many open files", report)
        assert.matches("REPORTS 1\n", out)    -- once for the whole burst
      end)
    end, nil, 20)
  end)
end)

describe("what the collector does not see", function()
  it("a closed stream's read buffer is freed at close, not when it is collected", function()
    local maps = H.readall("/proc/self/maps")
    if maps:find("libasan", 1, true) then
      pending("AddressSanitizer keeps freed memory (quarantine): the heap grows anyway")
      return
    end
    local function data_kb()            -- the heap, touched or not
      local f = assert(io.open("/proc/self/status"))
      local kb = tonumber(f:read("a"):match("VmData:%s*(%d+)"))
      f:close()
      return kb
    end
    H.closes_fds(function()
      without_gc(function()
        local srv = aio.start_server(function(r, w)
          w:write(r:readline())
        end, HOST, 0)
        local _, port = srv:getsockname()
        ask(port, "warm\n")
        local before = data_kb()
        for i = 1, 300 do                -- two streams, two buffers each time
          assert.equal("n" .. i .. "\n", (ask(port, "n" .. i .. "\n")))
        end
        local grown = data_kb() - before
        assert.is_true(grown < 12 * 1024, ("the heap grew by %d KiB"):format(grown))
        srv:close()
        srv:wait_closed()
      end)
    end, 10, warm_up)
  end)

  it("out of descriptors, the server runs a collection: streams dropped without "
     .. "close() give theirs back and the waiting client is served", function()
    H.guarded(function()
      local sink = aio.start_server(function(r) r:read() end, HOST, 0)
      local _, sink_port = sink:getsockname()
      local p, port = serve_in_child(([[
local aio = require "luaio"
collectgarbage("stop")
aio.run(function()
  aio.get_running_loop():set_exception_handler(function(_, ctx)
    print("REPORT " .. tostring(ctx.message))
    io.stdout:flush()
  end)
  local srv
  srv = aio.start_server(function(r, w)
    local line = r:readline()
    if line == "quit\n" then srv:close() else w:write("pong " .. line) end
  end, "127.0.0.1", 0)
  local _, port = srv:getsockname()
  local dropped = 0
  while pcall(function()             -- connections dropped without close()
    local _, w = aio.open_connection("127.0.0.1", %d)
    w:write("x")
  end) do dropped = dropped + 1 end
  print("PORT " .. port)
  io.stdout:flush()
  srv:wait_closed()
  print("DROPPED " .. dropped)
end)
]]):format(sink_port), 40)
      with_child(p, port, function()
        assert.equal("pong waiting\n", (ask(port, "waiting\n")))
        ask(port, "quit\n")
        assert.equal(0, p:wait())
        local out = p.stdout:read()
        assert.matches("REPORT [^\n]*EMFILE", out)
        assert.is_true(tonumber(out:match("DROPPED (%d+)")) > 10, out)
      end)
      sink:close()
      sink:wait_closed()
    end, nil, 20)
  end)
end)

------------------------------------------------------------------ dispatch
-- A Lua allocator that fails the next n allocations of a coroutine (a
-- task's coroutine, when no finished one is left to reuse): the only way
-- creating a connection's task fails.  Two failures per coroutine: Lua
-- retries once after an emergency collection.
local FAULTS = [[
#include "lua.h"
#include "lauxlib.h"
static lua_Alloc old;
static int fail;
static void *alloc (void *ud, void *p, size_t osize, size_t nsize) {
  if (p == NULL && osize == LUA_TTHREAD && nsize > 0 && fail > 0) {
    fail--;
    return NULL;
  }
  return old(ud, p, osize, nsize);
}
static int install (lua_State *L) {
  void *ud;
  old = lua_getallocf(L, &ud);
  lua_setallocf(L, alloc, ud);
  return 0;
}
static int uninstall (lua_State *L) {
  void *ud;
  lua_getallocf(L, &ud);
  lua_setallocf(L, old, ud);
  fail = 0;
  return 0;
}
static int fail_threads (lua_State *L) {
  fail = (int)luaL_checkinteger(L, 1);
  return 0;
}
static int left (lua_State *L) {
  lua_pushinteger(L, fail);
  return 1;
}
int luaopen_server_faults (lua_State *L) {
  static const luaL_Reg f[] = {{"install", install}, {"uninstall", uninstall},
    {"fail_threads", fail_threads}, {"left", left}, {NULL, NULL}};
  luaL_newlib(L, f);
  return 1;
}
]]

describe("handing new connections to their handlers", function()
  it("closes and reports a connection whose task cannot be created; "
     .. "the rest of its batch is served and wait_closed() returns", function()
    local faults = H.require_cmodule("server_faults", FAULTS)
    local replies, eofs = {}, 0
    local reports = H.reports(function()
      local _ <close> = aio.timeout(5 * H.SLOW)
      local srv = aio.start_server(function(r, w)
        w:write("pong " .. r:readline())
      end, HOST, 0)
      local _, port = srv:getsockname()
      local go = aio.Event()
      local clients = {}
      for i = 1, 3 do                  -- made (with their coroutines) first
        clients[i] = aio.create_task(function()
          go:wait()
          local ok, reply = pcall(ask, port, "c" .. i .. "\n")
          if ok and reply then replies[#replies + 1] = reply else eofs = eofs + 1 end
        end)
      end
      aio.sleep(0)                     -- every client waits on go
      faults.install()
      faults.fail_threads(2)           -- the first task of a connection
      go:set()
      local ok, err = pcall(aio.wait, clients)
      local left = faults.left()
      faults.uninstall()
      assert.is_true(ok, tostring(err))
      assert.equal(0, left)
      srv:close()
      srv:wait_closed()
    end)
    faults.uninstall()
    table.sort(replies)
    assert.equal(2, #replies)
    assert.equal(1, eofs)
    assert.equal(1, #reports)
    assert.matches("could not be handed to its handler", reports[1].message)
    assert.matches("not enough memory", tostring(reports[1].exception))
  end)
end)
