-- spec/poll_spec.lua: aio.wait_readable / aio.wait_writable (descriptor
-- readiness on libuv's poll handle) and luaio_wait_fd, on real sockets
-- that LuaSocket (Debian's lua-socket) opens: ready, timeouts,
-- cancellation, several waiters on one descriptor, a descriptor closed
-- while waiting, shutdown, bad arguments.
local aio = require "luaio"
local H = require "helper"
local socket = require "socket"

local run = H.guarded
local errof = H.errof

-- A connected pair of non-blocking TCP sockets on loopback; close() closes
-- both.
local function pair()
  local srv = assert(socket.bind("127.0.0.1", 0))
  local _, port = srv:getsockname()
  local a = assert(socket.connect("127.0.0.1", port))
  local b = assert(srv:accept())
  srv:close()
  a:settimeout(0)
  b:settimeout(0)
  return a, b, function() a:close() b:close() end
end

-- The loop's open handles (poll handles among them), once the close
-- callbacks of those just closed have run (and the watchdog's timer, set
-- after the test's first step, is there).
local function handles()
  aio.sleep(0.005)                     -- through libuv: close callbacks run
  return aio.get_running_loop():stats().handles
end

local function fd(s) return math.tointeger(s:getfd()) end

-- This process's descriptors: number -> what it is open on.
local function fds()
  local st = assert(io.open("/proc/self/stat"))
  local pid = st:read("n")
  st:close()
  local p = assert(io.popen("ls -l /proc/" .. pid .. "/fd"))
  local out = p:read("a")
  p:close()
  local t = {}
  for n, what in out:gmatch("(%d+) %-> ([^\n]*)") do t[math.tointeger(tonumber(n))] = what end
  return t
end

-- The descriptor this process has open on path.
local function file_fd(path)
  for n, what in pairs(fds()) do if what == path then return n end end
end

-- A C module calling luaio_wait_fd: wait(fd, events, timeout) -> "ready".
-- (Stock lua5.4 loaded luaio.core with private symbols: made global first,
-- as examples/pg/pg.lua does.)
local WAIT_FD_SRC = [[
#include "lua.h"
#include "lauxlib.h"
#include "luaio.h"
static int done (lua_State *L, int status, lua_KContext ctx) {
  (void)status; (void)ctx;
  lua_pushliteral(L, "ready");
  return 1;
}
static int l_wait (lua_State *L) {
  return luaio_wait_fd(L, (int)luaL_checkinteger(L, 1),
                       (int)luaL_checkinteger(L, 2), luaL_checknumber(L, 3),
                       0, done);
}
int luaopen_waitfd (lua_State *L) {
  lua_newtable(L);
  lua_pushcfunction(L, l_wait);
  lua_setfield(L, -2, "wait");
  return 1;
}
]]
local waitfd
local function wait_fd_module()
  if waitfd then return waitfd end
  local dir = H.tmpdir()
  local f = assert(io.open(dir .. "/waitfd.c", "wb"))
  f:write(WAIT_FD_SRC)
  f:close()
  assert(os.execute(("cc -shared -fPIC -I%s/runtime $(pkg-config --cflags lua5.4 libuv) -o %s/waitfd.so %s/waitfd.c")
    :format(H.quote(H.ROOT), H.quote(dir), H.quote(dir))))
  local open = package.loadlib(dir .. "/waitfd.so", "luaopen_waitfd")
  if not open then
    local core = assert(package.searchpath("luaio.core", package.cpath))
    assert(package.loadlib(core:gsub("/", "//", 1), "*"))
    open = assert(package.loadlib(dir .. "/waitfd.so", "luaopen_waitfd"))
  end
  H.rmrf(dir)
  waitfd = open()
  return waitfd
end

local function cancelled(t)
  local ok, err = pcall(aio.await, t)
  assert.is_false(ok)
  assert.is_true(aio.is(err, aio.CancelledError), tostring(err))
end

describe("wait_readable / wait_writable", function()
  it("returns true once the descriptor is ready", function()
    run(function()
      local a, b, close = pair()
      assert.is_true(aio.wait_writable(fd(a)))
      local got
      local t = aio.create_task(function()
        got = aio.wait_readable(fd(b))
        return b:receive(5)
      end)
      aio.sleep(0.02)
      assert.is_false(t:done())          -- nothing to read yet: it waits
      a:send("hello")
      assert.equal("hello", t:await())
      assert.is_true(got)
      close()
    end)
  end)

  it("counts the peer's close as readable (the read then sees it)", function()
    run(function()
      local a, b, close = pair()
      aio.create_task(function() aio.sleep(0.01) a:shutdown("send") end)
      assert.is_true(aio.wait_readable(fd(b), 1))
      local data, err = b:receive(1)
      assert.is_nil(data)
      assert.equal("closed", err)
      close()
    end)
  end)

  it("raises TimeoutError after timeout seconds, and polls no more #timing", function()
    run(function()
      local base = handles()
      local _, b, close = pair()
      local t0 = aio.time()
      local err = errof(aio.wait_readable, fd(b), 0.05)
      local dt = aio.time() - t0
      assert.is_true(aio.is(err, aio.TimeoutError), tostring(err))
      assert.equal(("wait_readable: fd %d not readable within 0.05 s"):format(fd(b)),
        err.message)
      assert.is_true(dt >= 0.05 and dt < 0.5, tostring(dt))
      assert.equal(base, handles())
      close()
    end)
  end)

  it("timeout 0 (or negative): true when ready now, else TimeoutError", function()
    run(function()
      local a, b, close = pair()
      assert.is_true(aio.wait_writable(fd(a), 0))
      local err = errof(aio.wait_readable, fd(b), -1)
      assert.equal(("wait_readable: fd %d not readable within 0 s"):format(fd(b)),
        err.message)
      a:send("x")
      assert.is_true(aio.wait_readable(fd(b), 0))
      close()
    end)
  end)

  it("is cancellable; the descriptor can be waited on again after", function()
    run(function()
      local base = handles()
      local a, b, close = pair()
      local t = aio.create_task(aio.wait_readable, fd(b))
      aio.sleep(0.01)
      assert.equal(base + 1, handles())
      t:cancel()
      cancelled(t)
      assert.equal(base, handles())
      a:send("x")
      assert.is_true(aio.wait_readable(fd(b), 1))
      close()
    end)
  end)

  it("wakes every task waiting on one descriptor (one poll handle)", function()
    run(function()
      local base = handles()
      local a, b, close = pair()
      local ts = {}
      for i = 1, 5 do
        ts[i] = aio.create_task(aio.wait_readable, fd(b), 1)
      end
      local w = aio.create_task(aio.wait_writable, fd(b), 1)
      aio.sleep(0.01)
      assert.is_true(w:done())           -- the writer did not wait for them
      assert.is_true(w:result())
      assert.equal(base + 1, handles())
      ts[3]:cancel()                     -- one leaves; the others still wait
      cancelled(ts[3])
      a:send("x")
      for _, i in ipairs { 1, 2, 4, 5 } do assert.is_true(ts[i]:await()) end
      close()
    end)
  end)

  it("a waiter woken for data another took waits again, until its deadline", function()
    run(function()
      local a, b, close = pair()
      local first = aio.create_task(function()
        aio.wait_readable(fd(b))
        return b:receive(1)              -- takes the only byte
      end)
      local second = aio.create_task(aio.wait_readable, fd(b), 0.2)
      aio.sleep(0.01)
      a:send("x")
      assert.equal("x", first:await())
      aio.sleep(0.01)
      assert.is_false(second:done())     -- woken, found nothing, waits again
      local ok, err = pcall(aio.await, second)
      assert.is_false(ok)
      assert.is_true(aio.is(err, aio.TimeoutError), tostring(err))
      close()
    end)
  end)

  it("raises OSError when the descriptor is closed while it waits #timing", function()
    run(function()
      local _, b, close = pair()
      local n = fd(b)
      local t = aio.create_task(aio.wait_readable, n)
      aio.sleep(0.01)
      b:close()                          -- behind luaio's back
      local t0 = aio.time()
      local ok, err = pcall(aio.await, t)
      assert.is_false(ok)
      assert.is_true(aio.is(err, aio.OSError), tostring(err))
      assert.equal(("wait_readable: fd %d was closed while waiting"):format(n),
        err.message)
      assert.equal("EBADF", err.code)
      assert.is_true(aio.time() - t0 < 1.5, "noticed within the second")
      close()
    end)
  end)

  it("notices the close while other waits come and go (the check is never postponed)", function()
    run(function()
      local a, _, close = pair()
      local _, b2, close2 = pair()
      local n = fd(b2)
      local t = aio.create_task(aio.wait_readable, n)
      local busy = aio.create_task(function()
        while true do aio.wait_writable(fd(a)) aio.sleep(0.01) end
      end)
      aio.sleep(0.01)
      b2:close()
      local ok, err = pcall(aio.await, t)
      assert.is_false(ok)
      assert.equal(("wait_readable: fd %d was closed while waiting"):format(n),
        err.message)
      busy:cancel()
      cancelled(busy)
      close()
      close2()
    end)
  end)

  it("a closed descriptor's number reused: the old waiter fails, the new one works", function()
    run(function()
      local _, b, close = pair()
      local n = fd(b)
      local old = aio.create_task(aio.wait_readable, n)
      aio.sleep(0.01)
      b:close()
      local c, d, close2 = pair()        -- takes the lowest free numbers
      local same = fd(c) == n and c or fd(d) == n and d
      assert.is_truthy(same, "the number was reused")
      local other = same == c and d or c
      local new = aio.create_task(aio.wait_readable, n, 1)
      local ok, err = pcall(aio.await, old)
      assert.is_false(ok)
      assert.equal(("wait_readable: fd %d was closed while waiting"):format(n),
        err.message)
      other:send("y")
      assert.is_true(new:await())
      close()
      close2()
    end)
  end)

  it("loop shutdown cancels a waiting task and closes the poll handle", function()
    local r = aio.Runner()
    local _, b, close = pair()
    local outcome
    r:run(function()
      aio.create_task(function()
        local ok, err = pcall(aio.wait_readable, fd(b))
        outcome = not ok and aio.is(err, aio.CancelledError)
        error(err, 0)
      end)
      aio.sleep(0.01)
    end)
    r:close()
    assert.is_true(outcome)
    close()
  end)

  it("luaio_wait_fd: the same from an async C function", function()
    run(function()
      local a, b, close = pair()
      local w = wait_fd_module()
      assert.equal("ready", w.wait(fd(a), 2, -1))       -- LUAIO_WRITABLE
      local err = errof(w.wait, fd(b), 1, 0.05)        -- LUAIO_READABLE
      assert.is_true(aio.is(err, aio.TimeoutError), tostring(err))
      assert.equal(("luaio_wait_fd: fd %d not readable within 0.05 s"):format(fd(b)),
        err.message)
      local t = aio.create_task(w.wait, fd(b), 1, -1)
      aio.sleep(0.01)
      t:cancel()
      cancelled(t)
      aio.create_task(function() aio.sleep(0.01) a:send("z") end)
      assert.equal("ready", w.wait(fd(b), 1, 1))
      assert.equal("luaio_wait_fd: events must be LUAIO_READABLE or LUAIO_WRITABLE",
        tostring(errof(w.wait, fd(b), 3, 1)))
      assert.equal("bad argument #1 to 'luaio_wait_fd' (fd must be a descriptor >= 0)",
        tostring(errof(w.wait, -1, 1, 1)))
      close()
    end)
  end)

  it("refuses bad arguments with exact messages", function()
    run(function()
      local a, _, close = pair()
      local function msg(...) return tostring(errof(...)) end
      assert.equal("bad argument #1 to 'wait_readable' (integer expected, got string)",
        msg(aio.wait_readable, "3"))
      assert.equal("bad argument #1 to 'wait_writable' (integer expected, got no value)",
        msg(aio.wait_writable))
      assert.equal("bad argument #1 to 'wait_readable' (number has no integer representation)",
        msg(aio.wait_readable, 1.5))
      assert.equal("bad argument #1 to 'wait_readable' (fd must be a descriptor >= 0)",
        msg(aio.wait_readable, -1))
      assert.equal("bad argument #1 to 'wait_readable' (fd 100000 is not open)",
        msg(aio.wait_readable, 100000))
      assert.equal("bad argument #2 to 'wait_readable' (number or nil expected, got string)",
        msg(aio.wait_readable, fd(a), "1"))
      assert.equal("bad argument #2 to 'wait_writable' (timeout is NaN)",
        msg(aio.wait_writable, fd(a), 0 / 0))
      -- a regular file (its descriptor found in /proc): epoll refuses it
      local path = H.tmpdir() .. "/plain"
      local f = assert(io.open(path, "w"))
      local n = file_fd(path)
      assert.equal(("wait_readable: fd %d cannot be polled (a regular file or a directory?)"):format(n),
        msg(aio.wait_readable, n))
      f:close()
      H.rmrf(path:match("^(.*)/"))
      -- a descriptor libuv already polls: a luaio server's listening socket
      local before = fds()
      local srv = aio.start_server(function() end, "127.0.0.1", 0)
      local listening
      for k, what in pairs(fds()) do
        -- (a new socket: a number may be reused from one closed meanwhile)
        if before[k] ~= what and what:find("^socket:") then listening = k end
      end
      assert.equal(("wait_readable: fd %d is already watched by this loop (a luaio stream, "
        .. "server or pipe owns it)"):format(listening), msg(aio.wait_readable, listening, 1))
      srv:close()
      srv:wait_closed()
      close()
    end)
    run(function()
      local res = H.in_callback(aio.wait_readable, 0)
      assert.is_false(res[1])
      assert.equal("wait_readable: needs a running task (called outside a task)",
        tostring(res[2]))
    end)
  end)
end)
