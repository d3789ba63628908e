-- spec/helper.lua: what every spec file shares.
--
-- H.run(fn, opts): runs fn as the main task of a fresh loop (Runner opts),
-- then checks that nothing is left behind -- no pending task, handle,
-- timer or ready entry -- closes the loop and returns fn's results.
-- H.cli(args, opts): runs the luaio CLI as a child process; returns
-- {status =, stdout =, stderr =}.
local aio = require "luaio"

local H = {}

H.LUAIO = os.getenv("LUAIO") or "build/luaio"
H.ROOT = (H.LUAIO:match("^(.*)/build/[^/]*$")) or "."

-- The stats that must be back to zero once a test has finished.
local function leftovers(loop)
  local s = loop:stats()
  local bad = {}
  for _, k in ipairs { "tasks", "handles", "timers", "ready", "requests" } do
    if s[k] ~= 0 then bad[#bad + 1] = k .. "=" .. s[k] end
  end
  return #bad > 0 and table.concat(bad, " ") or nil
end
H.leftovers = leftovers

local function finish(r, ok, ...)
  local loop = r:get_loop()
  local left = leftovers(loop)
  r:close()
  if not ok then error((...), 0) end
  assert(left == nil, "left behind after the test: " .. tostring(left))
  return ...
end

function H.run(fn, opts)
  local r = aio.Runner(opts)
  return finish(r, pcall(r.run, r, fn))
end

-- Real-time watchdog limits are multiplied by H.SLOW (LUAIO_SPEC_SLOW,
-- default 3): they are there to catch hangs, and a sanitizer build on a
-- loaded CI machine runs many times slower than a plain one here.
H.SLOW = tonumber(os.getenv("LUAIO_SPEC_SLOW")) or 3

-- Runs fn in the running task with a watchdog: stuck longer than limit
-- seconds (a lost wake-up), it fails instead of hanging the whole run.
-- (virtual: the limit is in virtual seconds, which a slow machine does
-- not stretch.)
local function watched(fn, limit, virtual)
  if not virtual then limit = limit * H.SLOW end
  local ok, err = pcall(aio.wait_for, fn, limit)
  if not ok and aio.is(err, aio.TimeoutError) then
    error("watchdog: the test was stuck (lost wake-up?)", 0)
  end
  if not ok then error(err, 0) end
end

-- H.run with a watchdog (limit: 2 s of real time, 100 s virtual, unless
-- given).
function H.guarded(fn, opts, limit)
  return H.run(function()
    local virtual = opts ~= nil and opts.clock == "virtual"
    watched(fn, limit or (virtual and 100 or 2), virtual)
  end, opts)
end

-- H.run with a watchdog (limit, default 3 s) and a check that every
-- descriptor the test opened is closed again.  before() runs first,
-- outside the count (e.g. what opens a descriptor once per loop).
function H.closes_fds(fn, limit, before)
  return H.run(function()
    if before then before() end
    local fds = H.open_fds()
    watched(fn, limit or 3)
    local n
    for _ = 1, 100 * H.SLOW do
      n = H.open_fds()
      if n <= fds then break end
      aio.sleep(0.01)
    end
    assert(n <= fds, ("sockets left open: %d fds before, %d after"):format(fds, n))
  end)
end

-- A new empty directory under the system's temporary one; H.rmrf(d)
-- removes it and what it holds.
function H.tmpdir()
  local d = os.tmpname()
  os.remove(d)
  assert(os.execute("mkdir -p " .. H.quote(d)))
  return d
end

function H.rmrf(d) os.execute("rm -rf " .. H.quote(d)) end

-- libuv keeps one spare descriptor per loop from its first stream on
-- (its EMFILE reserve): a before() for H.closes_fds that opens it.
function H.warm_up()
  local s = aio.start_server(function() end, "127.0.0.1", 0)
  s:close()
  s:wait_closed()
end

-- A TCP server on host (default 127.0.0.1) and a free port for specs:
-- handler(r, w) runs per connection; its writer is closed after it
-- returns and its errors are raised by stop(), which also closes the
-- server, waits for every handler to finish and returns how many ran.
-- opts go to aio.start_server (ssl, limit, ...).  -> server, port, stop
function H.serve(handler, opts, host)
  local active, idle, errors, handled = 0, aio.Event(), {}, 0
  idle:set()
  local srv = aio.start_server(function(r, w)
    active = active + 1
    handled = handled + 1
    idle:clear()
    local ok, err = pcall(handler, r, w)
    if not ok then errors[#errors + 1] = err end
    w:close()
    w:wait_closed()
    active = active - 1
    if active == 0 then idle:set() end
  end, host or "127.0.0.1", 0, opts)
  local _, port = srv:getsockname()
  local function stop()
    srv:close()
    srv:wait_closed()
    idle:wait()
    if #errors > 0 then error(errors[1], 0) end
    return handled
  end
  return srv, port, stop
end

-- The error awaiting task t raises (fails when it returns).
function H.await_err(t)
  local ok, err = pcall(t.await, t)
  assert(not ok, "expected the task to fail")
  return err
end

function H.is_cancelled(err) return aio.is(err, aio.CancelledError) end

-- The error f(...) raises (fails when it raises none).
function H.errof(f, ...)
  local ok, err = pcall(f, ...)
  assert(not ok, "expected an error")
  return err
end

-- n passes of the scheduler.
function H.spin(n)
  for _ = 1, (n or 5) do aio.sleep(0) end
end

-- Waits for every task in ts to finish (never raises).
function H.settle(ts)
  if #ts > 0 then aio.wait(ts) end
end

-- Runs f(...) in a loop callback (not a task); returns pcall's results.
function H.in_callback(f, ...)
  local args = table.pack(...)
  local res
  aio.get_running_loop():call_soon(function()
    res = table.pack(pcall(f, table.unpack(args, 1, args.n)))
  end)
  H.spin(2)
  return res
end

-- This process's open file descriptors (leak checks for sockets).
function H.open_fds()
  local f = assert(io.open("/proc/self/stat"))
  local pid = f:read("n")
  f:close()
  local p = assert(io.popen("ls /proc/" .. pid .. "/fd 2>/dev/null | wc -l"))
  local n = tonumber(p:read("a"))
  p:close()
  return n
end

-- Runs fn and returns the list of exception contexts the loop reported.
function H.reports(fn, opts)
  local got = {}
  local r = aio.Runner(opts)
  r:get_loop():set_exception_handler(function(_, ctx) got[#got + 1] = ctx end)
  local ok, err = pcall(r.run, r, fn)
  r:close()
  if not ok then error(err, 0) end
  return got
end

local function readall(path)
  local f = io.open(path, "rb")
  if not f then return "" end
  local s = f:read("a")
  f:close()
  return s
end
H.readall = readall

local function quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end
H.quote = quote

-- Runs the CLI: args is a list; opts.stdin (string), opts.env (prefix
-- like "LUA_INIT='x'"), opts.cwd.
function H.cli(args, opts)
  opts = opts or {}
  local out, err, inp = os.tmpname(), os.tmpname(), os.tmpname()
  local f = assert(io.open(inp, "wb"))
  f:write(opts.stdin or "")
  f:close()
  local cmd = {}
  if opts.cwd then cmd[#cmd + 1] = "cd " .. quote(opts.cwd) .. " &&" end
  if opts.env then cmd[#cmd + 1] = opts.env end
  cmd[#cmd + 1] = "timeout 20 " .. quote(H.LUAIO)
  for _, a in ipairs(args) do cmd[#cmd + 1] = quote(a) end
  cmd[#cmd + 1] = "<" .. quote(inp) .. " >" .. quote(out) .. " 2>" .. quote(err)
  local _, _, code = os.execute(table.concat(cmd, " "))
  local r = { status = code, stdout = readall(out), stderr = readall(err) }
  os.remove(out); os.remove(err); os.remove(inp)
  return r
end

-- Builds a C module `name` from C source src against liblua5.4.so (with
-- the system's cc and pkg-config); returns the directory holding
-- name.so, for package.cpath, and a function that removes it.
function H.build_cmodule(name, src)
  local dir = os.tmpname()
  os.remove(dir)
  assert(os.execute("mkdir -p " .. quote(dir)))
  local f = assert(io.open(dir .. "/" .. name .. ".c", "wb"))
  f:write(src)
  f:close()
  assert(os.execute("cc -shared -fPIC $(pkg-config --cflags lua5.4) -o "
    .. quote(dir .. "/" .. name .. ".so") .. " " .. quote(dir .. "/" .. name .. ".c")
    .. " $(pkg-config --libs lua5.4)"), "cc failed for module " .. name)
  return dir, function() os.execute("rm -rf " .. quote(dir)) end
end

-- Builds C module `name` from src (H.build_cmodule) and requires it.
function H.require_cmodule(name, src)
  local dir, cleanup = H.build_cmodule(name, src)
  local saved = package.cpath
  package.cpath = dir .. "/?.so;" .. saved
  local ok, m = pcall(require, name)
  package.cpath = saved
  cleanup()
  assert(ok, m)
  return m
end

-- Writes a temporary Lua file and returns its path.
function H.script(src)
  local path = os.tmpname() .. ".lua"
  local f = assert(io.open(path, "wb"))
  f:write(src)
  f:close()
  return path
end

return H
