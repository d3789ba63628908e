-- luaio: asyncio for Lua.
--
-- This module binds the C core (luaio.core: scheduler, tasks, futures,
-- timers, errors) and adds what reads best in Lua: run/Runner, await,
-- pcall/xpcall that never swallow the calling task's cancellation, the
-- loop's exception handling, and the coroutine functions that let user
-- coroutines inside tasks suspend.
--
-- Suspension points here: aio.sleep, aio.await / x:await().  Cancelling
-- a task raises aio.CancelledError at the point where it is suspended
-- (or at its next one); awaiting a task or future that gets cancelled
-- raises it too.  See docs/reference.md.
local core = require "luaio.core"

local M = {}

M._VERSION = "luaio " .. core.version
M.core = core

------------------------------------------------------------------ errors
local error_names = {
  "BaseError", "Error", "CancelledError", "KeyboardInterrupt", "SystemExit",
  "BaseExceptionGroup", "TimeoutError", "InvalidStateError",
  "QueueEmpty", "QueueFull", "QueueShutDown", "IncompleteReadError",
  "LimitOverrunError", "BrokenBarrierError", "ExceptionGroup", "OSError",
  "SSLError",
}
for _, name in ipairs(error_names) do M[name] = core[name] end
-- The constructors and methods of ExceptionGroup and BaseExceptionGroup
-- live in luaio.taskgroup, which is loaded lazily: the first call loads
-- it (it replaces this __call).
if not package.loaded["luaio.taskgroup"] then
  for _, cls in ipairs { core.ExceptionGroup, core.BaseExceptionGroup } do
    getmetatable(cls).__call = function(...)
      require "luaio.taskgroup"
      return getmetatable(cls).__call(...)
    end
  end
end
M.is = core.is
M.new_error_class = core.new_error_class

------------------------------------------------------------------ tasks
M.sleep = core.sleep
M.time = core.time
M.Future = core.Future
M.current_task = core.current_task
M.all_tasks = core.all_tasks
M.create_task = core.create_task
M.spawn = core.create_task
M.get_running_loop = core.get_running_loop
M.wait_readable = core.wait_readable
M.wait_writable = core.wait_writable

local Task = core.TaskMethods
local FutureMethods = core.FutureMethods

--- aio.async(fn) -> function that runs fn(...) as a new task.
function M.async(fn)
  if type(fn) ~= "function" then
    error(("bad argument #1 to 'async' (function expected, got %s)"):format(
      type(fn)), 2)
  end
  return function(...) return core.create_task(fn, ...) end
end

local task_mt = debug.getregistry()["luaio.Task"]
local future_mt = debug.getregistry()["luaio.Future"]

--- aio.await(x) -> results of a Task, Future, or a value with __await.
function M.await(x)
  local mt = getmetatable(x)
  if mt == task_mt or mt == future_mt then return x:await() end
  local aw = type(mt) == "table" and rawget(mt, "__await")
  if aw then return aw(x) end
  error(("bad argument #1 to 'await' (awaitable expected, got %s)"):format(
    mt and mt.__name or type(x)), 2)
end

--- aio.isfuture(x) -> true for Tasks and Futures
function M.isfuture(x)
  local mt = getmetatable(x)
  return mt == task_mt or mt == future_mt
end

function Task:print_stack(file)
  if getmetatable(self) ~= task_mt then core.bad_self(self, "Task", "print_stack") end
  file = file or io.stderr
  if io.type(file) ~= "file" and not (type(file) == "table" and type(file.write) == "function") then
    error(("bad argument #1 to 'print_stack' (file or object with write expected, got %s)"):format(type(file)), 2)
  end
  local s = self:get_stack()
  file:write(("Stack for %s:\n%s\n"):format(tostring(self),
    s or "(no stack: the task is not suspended)"))
end

------------------------------------------------------------------ pcall
local function own_cancellation(err)
  if not core.is(err, core.CancelledError) then return false end
  local t = core.current_task()
  return t ~= nil and t:cancelling() > 0
end

local function pcall_result(ok, ...)
  if not ok and own_cancellation((...)) then error((...), 0) end
  return ok, ...
end

--- aio.pcall(f, ...): pcall that re-raises the calling task's own
--- cancellation instead of returning it.
function M.pcall(f, ...)
  return pcall_result(pcall(f, ...))
end

--- aio.xpcall(f, handler, ...): likewise; the handler is not called for
--- the task's own cancellation.
function M.xpcall(f, handler, ...)
  local own = false
  local function h(err)
    if own_cancellation(err) then own = true; return err end
    return handler(err)
  end
  return (function(ok, ...)
    if not ok and own then error((...), 0) end
    return ok, ...
  end)(xpcall(f, h, ...))
end

------------------------------------------------------------------ loop
local Loop = core.Loop

local function describe(ctx)
  local out = { tostring(ctx.message) }
  if ctx.task ~= nil then out[#out + 1] = "task: " .. tostring(ctx.task) end
  if ctx.future ~= nil then out[#out + 1] = "future: " .. tostring(ctx.future) end
  if ctx.handle ~= nil then out[#out + 1] = "handle: " .. tostring(ctx.handle) end
  if ctx.exception ~= nil then   -- as the CLI prints it: chain, sub-errors
    local tb = ctx.traceback
    out[#out + 1] = require("luaio.traceback").format_exception(ctx.exception,
      tb ~= nil and tostring(tb) or nil)
  elseif ctx.traceback ~= nil then
    out[#out + 1] = tostring(ctx.traceback)
  end
  return table.concat(out, "\n")
end

local loop_mt = debug.getregistry()["luaio.Loop"]

local function check_handler_args(self, ctx, name)
  if getmetatable(self) ~= loop_mt then core.bad_self(self, "Loop", name, 3) end
  if type(ctx) ~= "table" then
    error(("bad argument #1 to '%s' (table expected, got %s)"):format(name, type(ctx)), 3)
  end
end

--- loop:default_exception_handler(ctx): writes the context to stderr.
function Loop:default_exception_handler(ctx)
  check_handler_args(self, ctx, "default_exception_handler")
  io.stderr:write(describe(ctx), "\n")
  io.stderr:flush()
end

--- loop:call_exception_handler(ctx): the handler set, or the default.
function Loop:call_exception_handler(ctx)
  check_handler_args(self, ctx, "call_exception_handler")
  local h = self:get_exception_handler()
  if h == nil then return self:default_exception_handler(ctx) end
  local ok, err = pcall(h, self, ctx)
  if not ok then
    self:default_exception_handler({
      message = "Unhandled error in exception handler",
      exception = err,
      context = ctx,
    })
    self:default_exception_handler(ctx)
  end
end

core.set_dispatcher(function(loop, ctx) loop:call_exception_handler(ctx) end)

------------------------------------------------------------------ running
local Runner = {}
Runner.__index = Runner
local RUNNER_OPTIONS = { debug = true, clock = true, shutdown_timeout = true, loop = true }
Runner.__name = "Runner"

--- aio.Runner([opts]) -> runner; opts: debug, clock ("real"|"virtual"),
--- shutdown_timeout (seconds, default 5, or LUAIO_SHUTDOWN_TIMEOUT): how
--- long closing waits for tasks to unwind and streams to write what they
--- queued; loop = luv (the module require "luv" returns): run on luv's
--- libuv loop (docs/guide-libraries.md, "luv on the same loop").
function M.Runner(opts)
  if opts ~= nil and type(opts) ~= "table" then
    error(("bad argument #1 to 'Runner' (table expected, got %s)"):format(
      type(opts)), 2)
  end
  core.check_options(opts, "Runner", RUNNER_OPTIONS, 2)
  local o = {}
  for k, v in pairs(opts or {}) do o[k] = v end
  if o.loop ~= nil then o.loop = require("luaio.luv").loop_of(o.loop, 2) end
  if o.debug == nil and os.getenv("LUAIO_DEBUG") == "1" then o.debug = true end
  if o.shutdown_timeout == nil then
    local env = os.getenv("LUAIO_SHUTDOWN_TIMEOUT")
    if env ~= nil then
      local t = tonumber(env)
      if t == nil or t < 0 then   -- (tonumber makes no NaN)
        error(("LUAIO_SHUTDOWN_TIMEOUT must be a number of seconds >= 0 "
          .. "(got %q)"):format(env), 0)
      end
      o.shutdown_timeout = t
    end
  end
  return setmetatable({ _opts = o }, Runner)
end

local function check_runner(self, name)
  if getmetatable(self) ~= Runner then core.bad_self(self, "Runner", name, 3) end
end

function Runner:get_loop()
  check_runner(self, "get_loop")
  if self._closed then error("Runner: the runner is closed", 2) end
  if not self._loop then self._loop = core.new_loop(self._opts) end
  return self._loop
end

-- An error leaving run: under a plain interpreter with nothing to catch
-- it, lua.c prints only its __tostring, which then renders it whole
-- (luaio.traceback).
local function escaping(err)
  if type(err) ~= "table" then return err end
  return require("luaio.traceback").escaping(err)
end

local function run_result(ok, ...)
  if not ok then error(escaping((...)), 0) end
  return ...
end

--- runner:run(fn, ...) -> fn's results; tasks survive to the next run.
function Runner:run(fn, ...)
  check_runner(self, "run")
  if type(fn) ~= "function" then
    error(("bad argument #1 to 'run' (function expected, got %s)"):format(
      type(fn)), 2)
  end
  local loop = self:get_loop()
  local context = package.loaded["luaio.context"]    -- inside a ctx:run?
  if context then fn = context._main_in_context(fn) end
  return run_result(pcall(loop._run, loop, fn, ...))
end

--- runner:close(): cancels what is left, closes handles and the loop.
function Runner:close()
  check_runner(self, "close")
  if self._loop then self._loop:_close() end
  self._closed = true
end
Runner.__close = Runner.close

local function close_and_return(r, ok, ...)
  r:close()
  if not ok then error(escaping((...)), 0) end
  return ...
end

--- aio.run(fn, ...) -> fn's results, on a new loop closed afterwards.
function M.run(fn, ...)
  if type(fn) ~= "function" then
    error(("bad argument #1 to 'run' (function expected, got %s)"):format(
      type(fn)), 2)
  end
  local r = M.Runner()
  return close_and_return(r, pcall(r.run, r, fn, ...))
end

------------------------------------------------------------------ the rest
-- The other parts load on first use (aio.gather loads the combinators,
-- aio.Queue the queues, ...): start-up stays close to plain Lua's.
local parts = {}

local function part_combinators()
  local combinators = require "luaio.combinators"
  local timeouts = require "luaio.timeouts"
  combinators._timeouts = timeouts
  for k, v in pairs(combinators) do
    if k:sub(1, 1) ~= "_" then rawset(M, k, v) end
  end
  rawset(M, "timeout", timeouts.timeout)
  rawset(M, "timeout_at", timeouts.timeout_at)
end
for _, k in ipairs { "gather", "wait", "wait_for", "as_completed", "shield",
                     "timeout", "timeout_at", "FIRST_COMPLETED",
                     "FIRST_EXCEPTION", "ALL_COMPLETED" } do
  parts[k] = part_combinators
end

parts.TaskGroup = function()
  rawset(M, "TaskGroup", require("luaio.taskgroup").TaskGroup)
end

local function part_context()
  local context = require "luaio.context"
  rawset(M, "ContextVar", context.ContextVar)
  rawset(M, "copy_context", context.copy_context)
  rawset(M, "Context", context.Context)
end
parts.ContextVar, parts.copy_context = part_context, part_context
parts.Context = part_context

parts.format_exception = function()
  rawset(M, "format_exception", require("luaio.traceback").format_exception)
end

parts.dump_tasks = function()
  rawset(M, "dump_tasks", require("luaio.introspect").dump_tasks)
end

local function part_sync()
  local sync = require "luaio.sync"
  for _, name in ipairs { "Lock", "Event", "Condition", "Semaphore",
                          "BoundedSemaphore", "Barrier" } do
    rawset(M, name, sync[name])
  end
end
for _, k in ipairs { "Lock", "Event", "Condition", "Semaphore",
                     "BoundedSemaphore", "Barrier" } do
  parts[k] = part_sync
end

local function part_queues()
  local queues = require "luaio.queues"
  rawset(M, "Queue", queues.Queue)
  rawset(M, "LifoQueue", queues.LifoQueue)
  rawset(M, "PriorityQueue", queues.PriorityQueue)
end
parts.Queue, parts.LifoQueue, parts.PriorityQueue = part_queues, part_queues, part_queues

local function part_streams()
  local streams = require "luaio.streams"
  for _, name in ipairs { "open_connection", "start_server", "open_unix_connection",
                          "start_unix_server", "open_udp", "getaddrinfo" } do
    rawset(M, name, streams[name])
  end
end
for _, k in ipairs { "open_connection", "start_server", "open_unix_connection",
                     "start_unix_server", "open_udp", "getaddrinfo" } do
  parts[k] = part_streams
end

parts.ssl = function()
  rawset(M, "ssl", require "luaio.ssl")
end

parts.fs = function() rawset(M, "fs", require "luaio.fs") end

parts.http = function() rawset(M, "http", require "luaio.http") end
parts.workers = function() rawset(M, "workers", require "luaio.workers") end

--- aio.getpid() -> this process's id
M.getpid = core.getpid
--- aio.worker_id() -> 1..n in a worker process of aio.workers, else nil
function M.worker_id() return M.workers.id() end
parts.socket = function() rawset(M, "socket", require "luaio.socket") end
parts.websocket = function() rawset(M, "websocket", require "luaio.websocket") end

parts.ngx = function() rawset(M, "ngx", require "luaio.ngx") end

local function part_process()
  local process = require "luaio.process"
  process._aio = M
  rawset(M, "PIPE", process.PIPE)
  rawset(M, "DEVNULL", process.DEVNULL)
  rawset(M, "STDOUT", process.STDOUT)
  rawset(M, "create_subprocess_exec", process.create_subprocess_exec)
  rawset(M, "create_subprocess_shell", process.create_subprocess_shell)
end
for _, k in ipairs { "PIPE", "DEVNULL", "STDOUT", "create_subprocess_exec",
                     "create_subprocess_shell" } do
  parts[k] = part_process
end

-- Methods written in Lua for objects the core makes (a subprocess's
-- pipes, stdin, servers...): whichever part made the object, the first
-- look-up that misses in the class's methods loads the module that
-- defines them.
local method_modules = {
  [core.ReaderMethods] = "luaio.streams",
  [core.WriterMethods] = "luaio.streams",
  [core.ServerMethods] = "luaio.streams",
}
for methods, name in pairs(method_modules) do
  if not package.loaded[name] then
    setmetatable(methods, { __index = function(t, k)
      setmetatable(t, nil)
      require(name)
      return rawget(t, k)
    end })
  end
end

setmetatable(M, {
  __index = function(_, k)
    local load_part = parts[k]
    if load_part then
      load_part()
      return rawget(M, k)
    end
  end,
  -- pairs(aio) lists the whole API, the lazily loaded parts included
  __pairs = function(t)
    for k, load_part in pairs(parts) do
      if rawget(t, k) == nil then load_part() end
    end
    return next, t, nil
  end,
})

core.ignore_sigpipe()

--- aio.to_thread(fn, ...) -> fn(...)'s results, run on a worker thread
M.to_thread = core.to_thread

--- loop:run_in_executor(fn, ...) is aio.to_thread(fn, ...)
function Loop:run_in_executor(fn, ...)
  if getmetatable(self) ~= loop_mt then core.bad_self(self, "Loop", "run_in_executor") end
  return core.to_thread(fn, ...)
end

--- aio.eager_task_factory: install with loop:set_task_factory(); tasks
--- then run their first step inside create_task (asyncio 3.12).
function M.eager_task_factory(_loop, fn, ...)
  return core.create_eager_task(fn, ...)
end

------------------------------------------------------------------ coroutines
-- luaio's resume/wrap/yield/close/status: Lua's, plus passing luaio's
-- suspensions to the scheduler.  Installed into the global table.
local co = {}
for k, v in pairs(coroutine) do co[k] = v end
for k, v in pairs(core.coroutine) do co[k] = v; coroutine[k] = v end
M.coroutine = co

-- keep the class tables reachable from the module table for users
M.Task = Task
M.FutureMethods = FutureMethods

return M
