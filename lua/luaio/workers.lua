-- luaio.workers (aio.workers): worker processes sharing listeners, under
-- a supervisor -- `luaio --workers N app.lua`, or aio.workers.run from a
-- program of one's own.
--
--   aio.workers.run(main [, opts]) -> exit status
--     In the supervisor (the process started by hand): starts opts.count
--     workers (a number, or "auto": one per core) and supervises them
--     until they are all gone; returns what happened as an exit status
--     (M.EXIT).  main is a script's path (each worker runs it, with
--     opts.args) or a function: each worker then runs this same program
--     again (with opts.args, or this program's arguments), whose call of
--     run(main) runs main() in the worker.  Other opts: drain_timeout
--     (10 s), max_restarts (5), restart_window (60 s), ready_timeout (10
--     s: how long a reload waits for a new worker to listen), command (the
--     workers' command line, a list, instead of the one made).
--     In a worker: runs main() as the worker's body and returns 0 (it
--     drains on SIGTERM/SIGINT, below).  Suspends; needs a running loop.
--   aio.workers.id() / aio.worker_id() -> 1..count in a worker, else nil
--   aio.workers.count() -> the number of workers, in a worker, else nil
--
-- Sharing the port: in a worker, every TCP start_server (aio.http.serve's
-- too) sets SO_REUSEPORT, and each worker has its own accept queue on the
-- same address: the kernel spreads the connections by a hash of their
-- addresses (docs/guide.md, "Worker processes", says why not a listener
-- inherited from the supervisor).
--
-- Supervision: a worker's stdout and stderr go through the supervisor,
-- each line prefixed "[worker N] ".  A worker that dies (a status other
-- than 0, a signal) is started again after a pause (0.1 s doubling up to
-- 5 s while it keeps dying); more than opts.max_restarts deaths of one
-- worker within opts.restart_window seconds stop everything (a crash
-- loop: EXIT.crash_loop).  A worker that ends with status 0 on its own is
-- not replaced.  SIGTERM or SIGINT: every worker drains -- its servers
-- stop accepting, HTTP servers close their idle connections and finish
-- the requests in flight, then the worker's body is cancelled and it
-- exits 0; what is still open after opts.drain_timeout seconds is
-- cancelled (HTTP) and a worker still alive 2 s later is killed.  SIGHUP
-- replaces the workers one at a time: the new one starts, and once it
-- listens (or after 10 s) the old one drains; the others serve
-- meanwhile, so no connection is refused.
local aio = require "luaio"
local core = require "luaio.core"

local M = {}

--- The supervisor's exit statuses.
M.EXIT = {
  ok = 0,           -- stopped by SIGTERM/SIGINT, or every worker ended with 0
  failed = 1,       -- a worker could not be started
  crash_loop = 2,   -- a worker died more than max_restarts times in the window
  killed = 3,       -- a worker did not drain in time (killed) or failed draining
}

local READY = "\0luaio-worker-ready"   -- a worker's line to its supervisor
local format = string.format

-------------------------------------------------------------------- worker

-- How long connections just accepted (the listener's queue taken
-- first) have before the servers close.  The HTTP server gives such a
-- connection a second of its own since (server:close()); plain stream
-- servers' handlers need the moment too, and on a loaded machine a
-- worker may take a while to get to them.
local GRACE = 1

local function weak() return setmetatable({}, { __mode = "k" }) end

-- Drains one loop's servers: they stop accepting (the listening sockets
-- leave the port's group, the connections queued on them taken first);
-- a moment later the HTTP servers close (idle connections now, those in
-- flight after their request, the rest cancelled at the deadline) and so
-- do the others; once all are closed (or the deadline is past), the task
-- that started serving is cancelled if it still runs.
local function drain(w, st)
  for sv in pairs(st.servers) do pcall(sv._stop_accepting, sv) end
  aio.sleep(math.min(GRACE, w.drain))
  for srv in pairs(st.https) do pcall(srv.close, srv, w.drain) end
  for sv in pairs(st.servers) do pcall(sv.close, sv) end
  pcall(aio.wait_for, function()
    for srv in pairs(st.https) do pcall(srv.wait_closed, srv) end
    for sv in pairs(st.servers) do pcall(sv.wait_closed, sv) end
  end, w.drain + 1)
  if not st.done and st.task and not st.task:done() then st.task:cancel() end
end

-- The worker's state for the running loop (a script may run loops of
-- its own, with aio.run): its servers, and SIGTERM/SIGINT watched.
local function loop_state(w)
  local loop = aio.get_running_loop()
  local st = w.loops[loop]
  if st then return st end
  st = { servers = weak(), https = weak(), task = aio.current_task() }
  w.loops[loop] = st
  local function on_signal()
    w.draining = true
    if st.drainer == nil then st.drainer = aio.create_task(drain, w, st) end
  end
  loop:add_signal_handler("SIGTERM", on_signal)
  loop:add_signal_handler("SIGINT", on_signal)
  if w.orphan then on_signal() end
  return st
end

-- The worker's state (core._worker), read from the environment once; the
-- variables are removed so that the worker's own children are not workers.
local function worker_state()
  local w = core._worker
  if w ~= nil then return w end
  local id = core._takeenv("LUAIO_WORKER_ID")
  if id == nil then return nil end
  local count = core._takeenv("LUAIO_WORKERS")
  local drain_timeout = core._takeenv("LUAIO_WORKER_DRAIN")
  local ppid = core._takeenv("LUAIO_SUPERVISOR_PID")
  w = { id = math.tointeger(tonumber(id)), count = math.tointeger(tonumber(count)),
        drain = tonumber(drain_timeout) or 10, loops = weak(), ready = false }
  -- the supervisor killed -9: SIGTERM, and this worker drains
  if ppid and not core._pdeathsig(math.tointeger(tonumber(ppid)) or 0) then
    w.orphan = true
  end
  -- start_server calls this in a worker (luaio.streams)
  function w.listening(server)
    loop_state(w).servers[server] = true
    if not w.ready then            -- the supervisor's reload waits for this
      w.ready = true
      io.stderr:write(READY, "\n")
      io.stderr:flush()
    end
  end
  -- aio.http.serve calls this in a worker (luaio.http): once drained, its
  -- serve_forever() returns only when its connections are closed too
  function w.serving(srv)
    loop_state(w).https[srv] = true
    local serve_forever = srv.serve_forever
    srv.serve_forever = function(self)
      serve_forever(self)
      if w.draining then self:wait_closed() end
    end
  end
  io.stdout:setvbuf("line")        -- (a pipe: the supervisor prefixes lines)
  core._worker = w
  return w
end

function M.id()
  local w = worker_state()
  return w and w.id
end

function M.count()
  local w = worker_state()
  return w and w.count
end

-- Runs body(...) in the running task as this worker's body: once a
-- drain began, it waits for the drain, and a cancellation is no error.
local function worker_main(w, body, ...)
  local st = loop_state(w)
  local ok, err = pcall(body, ...)
  st.done = true
  if st.drainer then pcall(st.drainer.await, st.drainer) end   -- the closes, in time
  if not ok and not (w.draining and core.is(err, aio.CancelledError)) then
    error(err, 0)
  end
  return 0
end

-- `lua5.4 -e "require('luaio.workers')._boot()" script args`: this
-- process is a worker; the script runs next, as lua5.4 runs it (it runs
-- its loop itself, with aio.run).
function M._boot()
  worker_state()
end

-- For the luaio command: runs fn as the worker's body when this process
-- is a worker (returns true, the status), else returns false.
function M._cli_worker(fn)
  local w = worker_state()
  if w == nil then return false end
  return true, worker_main(w, fn)
end

---------------------------------------------------------------- supervisor

local function checkopts(opts)
  if opts == nil then opts = {} end
  if type(opts) ~= "table" then
    error("bad argument #2 to 'run' (options table expected, got " .. type(opts) .. ")", 3)
  end
  core.check_options(opts, "run", { count = true, args = true, drain_timeout = true,
    max_restarts = true, restart_window = true, command = true, ready_timeout = true }, 4)
  local o = {}
  local count = opts.count
  if count == nil or count == "auto" then
    count = core._cpu_count()
  elseif math.type(count) ~= "integer" or count < 1 then
    error(format("run: option 'count' must be a positive integer or \"auto\", got %s",
      tostring(count)), 3)
  end
  o.count = count
  local function number(k, default, min)
    local v = opts[k]
    if v == nil then return default end
    if type(v) ~= "number" or v ~= v or v < min then
      error(format("run: option '%s' must be a number >= %s, got %s", k, min, tostring(v)), 4)
    end
    return v
  end
  o.drain_timeout = number("drain_timeout", 10, 0)
  o.max_restarts = number("max_restarts", 5, 0)
  o.restart_window = number("restart_window", 60, 0)
  o.ready_timeout = number("ready_timeout", 10, 0)
  if opts.args ~= nil and type(opts.args) ~= "table" then
    error("run: option 'args' must be a list of strings", 3)
  end
  o.args = opts.args
  o.command = opts.command
  return o
end

-- The interpreter and its options, as this program was started.
local function interpreter()
  local cmd, i = {}, -1
  if not arg then return { "lua5.4" } end
  while arg[i - 1] ~= nil do i = i - 1 end
  for k = i, -1 do cmd[#cmd + 1] = arg[k] end
  if #cmd == 0 then cmd[1] = "lua5.4" end
  return cmd
end

-- The command line of every worker.
local function worker_command(main, o)
  if o.command then return o.command end
  local cmd = interpreter()
  if type(main) == "string" then          -- a script
    local exepath = debug.getregistry()["luaio.exepath"]
    if exepath then                        -- the luaio command runs it as a worker
      cmd = { exepath() or cmd[1] }
    else
      cmd[#cmd + 1] = "-e"
      cmd[#cmd + 1] = "require('luaio.workers')._boot()"
    end
    cmd[#cmd + 1] = main
    for _, a in ipairs(o.args or {}) do cmd[#cmd + 1] = a end
  else                                     -- this program again
    cmd[#cmd + 1] = arg and arg[0]
    local args = o.args or arg or {}
    for k = 1, #args do cmd[#cmd + 1] = args[k] end
  end
  return cmd
end

local function say(fmt, ...)
  io.stderr:write("luaio supervisor: ", format(fmt, ...), "\n")
  io.stderr:flush()
end

local SIGTERM = 15

local function describe(code)
  if code < 0 then return "signal " .. -code end
  return "status " .. code
end

-- Copies a worker's output, each line prefixed; READY lines are news.
local function pump(reader, out, prefix, on_ready)
  while true do
    local ok, line = pcall(reader.readline, reader)
    if not ok then                       -- a line over the limit: a chunk
      ok, line = pcall(reader.read, reader, 65536)
      if not ok then return end
    end
    if line == nil or line == "" then return end
    if on_ready and line == READY .. "\n" then
      on_ready()
    else
      if line:sub(-1) ~= "\n" then line = line .. "\n" end
      out:write(prefix, line)
      out:flush()
    end
  end
end

local Supervisor = {}
Supervisor.__index = Supervisor

local function new_supervisor(cmd, o)
  local env = {}
  for _, kv in ipairs(core._environ()) do
    local k, v = kv:match("^([^=]+)=(.*)$")
    if k and not k:match("^LUAIO_WORKER") and k ~= "LUAIO_SUPERVISOR_PID" then env[k] = v end
  end
  env.LUAIO_WORKERS = tostring(o.count)
  -- a worker serves for hours: Lua's own GC pause (the heap grows 2x, not
  -- the CLI's 4x, between cycles) keeps its RSS flat (make soak)
  env.LUAIO_GC = env.LUAIO_GC or "incremental,200"
  env.LUAIO_WORKER_DRAIN = tostring(o.drain_timeout)
  env.LUAIO_SUPERVISOR_PID = tostring(core.getpid())
  return setmetatable({ cmd = cmd, o = o, env = env, slots = {}, live = 0,
    all_gone = aio.Event(), status = M.EXIT.ok, stopping = nil, procs = {} }, Supervisor)
end

function Supervisor:gone()
  self.live = self.live - 1
  if self.live == 0 then self.all_gone:set() end
end

-- Starts a process for slot i; its watcher restarts it when it dies.
-- Returns the worker record, or nil when it could not be started.
function Supervisor:spawn(i)
  self.env.LUAIO_WORKER_ID = tostring(i)
  local ok, p = pcall(aio.create_subprocess_exec, self.cmd[1],
    table.move(self.cmd, 2, #self.cmd, 1, {}),
    { env = self.env, stdout = aio.PIPE, stderr = aio.PIPE, limit = 1024 * 1024 })
  if not ok then
    say("worker %d could not be started: %s", i, tostring(p))
    self.status = M.EXIT.failed
    return nil
  end
  local w = { id = i, proc = p, started = aio.get_running_loop():time(),
              ready = aio.Event() }
  self.procs[w] = true
  self.live = self.live + 1
  local prefix = format("[worker %d] ", i)
  aio.create_task(function()
    local pumps = aio.create_task(function()
      aio.gather {
        function() pump(p.stdout, io.stdout, prefix) end,
        function() pump(p.stderr, io.stderr, prefix, function()
          w.serving = true
          w.ready:set()
        end) end,
      }
    end)
    local code = p:wait()
    pcall(aio.wait_for, pumps, 1)
    self.procs[w] = nil
    w.ready:set()
    self:exited(w, code)
  end)
  return w
end

-- A worker ended: replaced, done, or restarted after a pause.
function Supervisor:exited(w, code)
  local slot = self.slots[w.id]
  if w.retired or self.stopping then
    -- a worker that had not begun to serve (its SIGTERM handler comes with
    -- its first server) ends by the SIGTERM itself: nothing was in flight
    if code == -SIGTERM and not w.serving then code = 0 end
    if code ~= 0 then
      if not w.retired and self.status == M.EXIT.ok then self.status = M.EXIT.killed end
      say("worker %d (pid %d) ended with %s while draining", w.id, w.proc.pid, describe(code))
    end
    return self:gone()
  end
  if code == 0 then
    say("worker %d (pid %d) ended with status 0; not restarted", w.id, w.proc.pid)
    slot.current = nil
    return self:gone()
  end
  local now = aio.get_running_loop():time()
  local recent = {}
  for _, t in ipairs(slot.deaths) do
    if now - t <= self.o.restart_window then recent[#recent + 1] = t end
  end
  recent[#recent + 1] = now
  slot.deaths = recent
  if #recent > self.o.max_restarts then
    say("worker %d died %d times in %g s (last: %s); giving up (crash loop)",
      w.id, #recent, self.o.restart_window, describe(code))
    self.status = M.EXIT.crash_loop
    self:stop("crash loop")
    return self:gone()
  end
  local delay = math.min(0.1 * 2 ^ (#recent - 1), 5)
  say("worker %d (pid %d) died with %s; restarting in %g s", w.id, w.proc.pid,
    describe(code), delay)
  aio.sleep(delay)
  if not self.stopping then
    slot.current = self:spawn(w.id)
  end
  return self:gone()
end

-- Every worker drains; those alive after the deadline are killed.
function Supervisor:stop(why)
  if self.stopping then return end
  self.stopping = why
  for w in pairs(self.procs) do pcall(w.proc.send_signal, w.proc, "SIGTERM") end
  self.killer = aio.create_task(function()
    aio.sleep(self.o.drain_timeout + 2)
    for w in pairs(self.procs) do
      say("worker %d (pid %d) did not drain in %g s; killed", w.id, w.proc.pid,
        self.o.drain_timeout + 2)
      self.status = M.EXIT.killed
      pcall(w.proc.kill, w.proc)
    end
  end)
end

-- Linux's net.ipv4.tcp_migrate_req is there and 0: a listening socket of
-- a SO_REUSEPORT group that closes resets its connections not yet
-- accepted instead of moving them to another socket of the group.
local function migrate_off()
  local f = io.open("/proc/sys/net/ipv4/tcp_migrate_req")
  if not f then return false end
  local v = f:read("l")
  f:close()
  return v == "0"
end

-- SIGHUP: one worker at a time, a new one first, then the old one drains.
function Supervisor:reload()
  if self.reloading or self.stopping then return end
  self.reloading = true
  self.reloader = aio.create_task(function()
    say("reloading %d workers", self.o.count)
    if not self.warned_migrate and migrate_off() then
      self.warned_migrate = true
      say("net.ipv4.tcp_migrate_req is 0: a connection caught in its handshake when a "
        .. "worker's socket closes is reset; `sysctl -w net.ipv4.tcp_migrate_req=1` "
        .. "moves it to another worker")
    end
    for i = 1, self.o.count do
      if self.stopping then break end
      local slot = self.slots[i]
      local new = self:spawn(i)
      if new then
        pcall(aio.wait_for, function() new.ready:wait() end, self.o.ready_timeout)
        local old = slot.current
        slot.current = new
        if old and self.procs[old] then
          old.retired = true
          pcall(old.proc.send_signal, old.proc, "SIGTERM")
          pcall(aio.wait_for, function() old.proc:wait() end, self.o.drain_timeout + 2)
        end
      end
    end
    self.reloading = false
  end)
end

function Supervisor:run()
  local loop = aio.get_running_loop()
  local handled = { "SIGTERM", "SIGINT", "SIGHUP" }
  loop:add_signal_handler("SIGTERM", function() self:stop("SIGTERM") end)
  loop:add_signal_handler("SIGINT", function() self:stop("SIGINT") end)
  loop:add_signal_handler("SIGHUP", function() self:reload() end)
  self.live = self.live + 1              -- (until every worker has been started)
  for i = 1, self.o.count do
    self.slots[i] = { deaths = {} }
    self.slots[i].current = self:spawn(i)
    if self.slots[i].current == nil then self:stop("start failed") break end
  end
  self:gone()
  self.all_gone:wait()
  for _, t in pairs { self.killer, self.reloader } do
    if not t:done() then t:cancel() end
  end
  for _, sig in ipairs(handled) do loop:remove_signal_handler(sig) end
  return self.status
end

--- aio.workers.run(main [, opts]) -> exit status (see the top)
function M.run(main, opts)
  local mt = type(main)
  if mt ~= "function" and mt ~= "string" then
    error("bad argument #1 to 'run' (function or script path expected, got " .. mt .. ")", 2)
  end
  local o = checkopts(opts)
  if not core.running_loop() then error("run: no running event loop", 2) end
  local w = worker_state()
  if w then
    if mt == "string" then
      error(format("run: already in worker %d (a script is run by the supervisor)", w.id), 2)
    end
    return worker_main(w, main)
  end
  return new_supervisor(worker_command(main, o), o):run()
end

return M
