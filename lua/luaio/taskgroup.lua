-- luaio.taskgroup: aio.TaskGroup, asyncio 3.13's structured concurrency,
-- and the methods of aio.ExceptionGroup.
--
--   local tg <close> = aio.TaskGroup()      -- the scope: `async with`
--   tg:create_task(fn, ...)
--   -- leaving the scope waits for every child
--
--   aio.TaskGroup(function(tg, ...) ... end, ...)  -- the function form:
--   returns the body's results once every child has finished.
--
-- The first failure of a child or of the body (other than cancellation)
-- cancels the body (the enclosing task) and the remaining children; once
-- all have finished an ExceptionGroup of every failure is raised.  If the
-- enclosing task is cancelled from outside, the children are cancelled and
-- CancelledError propagates once they have finished.  Leaving the scope
-- suspends (waiting for the children) even while an error unwinds: luaio
-- runs task bodies under lua_pcallk so <close> handlers may suspend.
-- Where Lua does not allow a yield (coroutine.close, an error escaping a
-- user coroutine, lua_close) the scope cancels its children without
-- waiting and raises an error saying so.
-- When a child's failure cancels the body, the body's stack (where it was
-- suspended) is kept: the ExceptionGroup, raised once the stack has
-- unwound, carries it as its traceback.
local core = require "luaio.core"

local M = {}

------------------------------------------------------------------ ExceptionGroup
-- Python's split: ExceptionGroup holds ordinary failures only (Errors,
-- strings, any non-BaseError value); a group holding a BaseError that is
-- not an Error (an interrupt, an exit request, a cancellation) is a
-- BaseExceptionGroup.  aio.BaseExceptionGroup(msg, errs) makes whichever
-- fits; aio.ExceptionGroup(msg, errs) refuses the second kind.
local EG = core.ExceptionGroup
local BEG = core.BaseExceptionGroup

local function is_base_only(e)
  return core.is(e, core.BaseError) and not core.is(e, core.Error)
end

-- The class for a group of excs: EG unless one of them is base-only.
local function group_class(excs)
  for i = 1, #excs do
    if is_base_only(excs[i]) then return BEG end
  end
  return EG
end

local function new_group(message, excs, cls, fname)
  if type(message) ~= "string" then
    error(("bad argument #1 to '%s' (string expected, got %s)")
      :format(fname, type(message)), 3)
  end
  if type(excs) ~= "table" or #excs == 0 then
    error(("bad argument #2 to '%s' (non-empty list of errors expected)")
      :format(fname), 3)
  end
  local list = {}
  for i = 1, #excs do list[i] = excs[i] end
  local fits = group_class(list)
  if cls == EG and fits == BEG then
    error("bad argument #2 to 'ExceptionGroup' (cannot hold a BaseError that is "
      .. "not an Error: use aio.BaseExceptionGroup)", 3)
  end
  return setmetatable({
    message = message, exceptions = list,
    traceback = debug.traceback(nil, 3),
  }, fits)
end

-- aio.ExceptionGroup(message, errors)
getmetatable(EG).__call = function(_, message, excs)
  return new_group(message, excs, EG, "ExceptionGroup")
end

-- aio.BaseExceptionGroup(message, errors): an ExceptionGroup when every
-- error is an ordinary failure (as Python's).
getmetatable(BEG).__call = function(_, message, excs)
  return new_group(message, excs, BEG, "BaseExceptionGroup")
end

-- A copy of this group holding errs: a subclass's class stays, the two
-- built-in ones become whichever fits errs.
local function derive(self, errs)
  local cls = getmetatable(self)
  if cls == EG or cls == BEG then cls = group_class(errs) end
  local g = setmetatable({}, cls)
  for k, v in pairs(self) do g[k] = v end
  g.exceptions = errs
  return g
end

local function matcher(cond)
  if type(cond) == "function" then return cond end
  if type(cond) == "table" then
    return function(e) return core.is(e, cond) end
  end
  error("split: a class or a predicate function expected", 3)
end

-- Splits self by match: the matching part and the rest (each nil if empty).
local function split(self, match)
  if match(self) then return self, nil end
  local yes, no = {}, {}
  for _, e in ipairs(self.exceptions) do
    if core.is(e, BEG) then
      local m, r = split(e, match)
      if m then yes[#yes + 1] = m end
      if r then no[#no + 1] = r end
    elseif match(e) then yes[#yes + 1] = e
    else no[#no + 1] = e end
  end
  return #yes > 0 and derive(self, yes) or nil,
         #no > 0 and derive(self, no) or nil
end

--- eg:split(class or predicate) -> match, rest
local function eg_split(self, cond)
  if not core.is(self, BEG) then core.bad_self(self, "ExceptionGroup", "split") end
  return split(self, matcher(cond))
end

--- eg:subgroup(class or predicate) -> the matching part, or nil
local function eg_subgroup(self, cond)
  if not core.is(self, BEG) then core.bad_self(self, "ExceptionGroup", "subgroup") end
  return (split(self, matcher(cond)))
end

local function eg_tostring(self)
  local n = #self.exceptions
  return ("%s: %s (%d sub-exception%s)"):format(getmetatable(self).__name,
    tostring(self.message), n, n == 1 and "" or "s")
end

for _, cls in ipairs { EG, BEG } do
  cls.split, cls.subgroup, cls.__tostring = eg_split, eg_subgroup, eg_tostring
end

M.ExceptionGroup = EG
M.BaseExceptionGroup = BEG

------------------------------------------------------------------ TaskGroup
local TaskGroup = {}
TaskGroup.__index = TaskGroup
TaskGroup.__name = "TaskGroup"

-- An interrupt or an exit request (Python's KeyboardInterrupt and
-- SystemExit): it leaves the group as itself, not in a group.
local function is_interrupt(e)
  return core.is(e, core.KeyboardInterrupt) or core.is(e, core.SystemExit)
end

local function abort(self)
  self._aborting = true
  for t in pairs(self._tasks) do
    if not t:done() then t:cancel() end
  end
end

local function on_task_done(self, task)
  self._tasks[task] = nil
  self._ntasks = self._ntasks - 1
  local w = self._on_completed
  if w ~= nil and self._ntasks == 0 and not w:done() then w:set_result(true) end
  if task:cancelled() then return end
  local err = task:exception()
  if err == nil then return end
  self._errors[#self._errors + 1] = err
  if self._base_error == nil and is_interrupt(err) then self._base_error = err end
  self._tracebacks[#self._errors] = task:get_stack() or false
  local parent = self._parent
  if parent:done() then
    self._loop:call_exception_handler({
      message = "Task has errored out but its parent task is already completed",
      exception = err, task = task,
    })
    return
  end
  if not self._aborting and not self._parent_cancel_requested then
    abort(self)
    self._parent_cancel_requested = true
    self._where = parent:get_stack()   -- the body's line (it is suspended)
    parent:cancel()
  end
end

local function callable(f)
  if type(f) == "function" then return true end
  local mt = getmetatable(f)
  return type(mt) == "table" and mt.__call ~= nil
end

--- tg:create_task(fn, ...) -> Task
function TaskGroup:create_task(fn, ...)
  if getmetatable(self) ~= TaskGroup then core.bad_self(self, "TaskGroup", "create_task") end
  if not callable(fn) then      -- (said here: the caller's line, not ours)
    error(("bad argument #1 to 'create_task' (function expected, got %s)")
      :format(type(fn)), 2)
  end
  if self._exiting and self._ntasks == 0 then
    error("TaskGroup:create_task: the task group has finished", 2)
  end
  if self._aborting then
    error("TaskGroup:create_task: the task group is shutting down", 2)
  end
  if not self._exiting and self._parent:done() then
    error("TaskGroup:create_task: the task that made the group has ended "
      .. "without closing it (declare it `local tg <close> = aio.TaskGroup()`)", 2)
  end
  local task = self._loop:create_task(fn, ...)
  if task:done() then
    self._ntasks = self._ntasks + 1
    self._tasks[task] = true
    on_task_done(self, task)
  else
    self._tasks[task] = true
    self._ntasks = self._ntasks + 1
    task:add_done_callback(self._cb)
  end
  return task
end

function TaskGroup:__tostring()
  return ("TaskGroup(%d tasks%s)"):format(self._ntasks,
    self._aborting and ", cancelling" or self._exiting and ", exiting" or "")
end

-- The scope's exit: asyncio's TaskGroup._aexit, with err the error value
-- unwinding through the scope (nil on a normal exit).
function TaskGroup:__close(err)
  -- Misuse (asyncio's "already entered"): the group is entered when made
  -- and exited once, in the task that made it.
  if self._closed then
    error("TaskGroup: closed twice (a group is entered when it is made and "
      .. "exited once: make a new one)", 0)
  end
  if core.current_task() ~= self._parent and core.can_suspend() then
    -- (where it cannot wait, below cancels its children instead)
    error("TaskGroup: closed in a task other than the one that made it", 0)
  end
  self._closed = true
  self._exiting = true
  local propagate_cancel = nil
  if err ~= nil and self._base_error == nil and is_interrupt(err) then
    self._base_error = err
  end
  if err ~= nil and core.is(err, core.CancelledError) then propagate_cancel = err end
  if err ~= nil and not self._aborting then abort(self) end
  if self._ntasks > 0 and not core.can_suspend() then
    abort(self)
    error("TaskGroup: closed where Lua does not allow a yield (coroutine.close, "
      .. "an error escaping a coroutine, or lua_close): its tasks were "
      .. "cancelled without waiting for them", 0)
  end
  while self._ntasks > 0 do
    if self._on_completed == nil then self._on_completed = core.Future() end
    local ok, e = pcall(self._on_completed.await, self._on_completed)
    if not ok then
      if not core.is(e, core.CancelledError) then error(e, 0) end
      if not self._aborting then
        propagate_cancel = e
        abort(self)
      end
    end
    self._on_completed = nil
  end
  if self._parent_cancel_requested then
    if self._parent:uncancel() == 0 then propagate_cancel = nil end
  end
  -- an interrupt or exit request wins, as itself (the group's own cancel
  -- request taken back above)
  if self._base_error ~= nil then error(self._base_error, 0) end
  local errors = self._errors
  if propagate_cancel ~= nil and #errors == 0 then error(propagate_cancel, 0) end
  if err ~= nil and not core.is(err, core.CancelledError) then
    errors[#errors + 1] = err
  end
  if #errors > 0 then
    local parent = self._parent
    if parent:cancelling() > 0 then
      parent:uncancel()
      parent:cancel()
    end
    local eg = new_group("unhandled errors in a TaskGroup", errors, BEG,
      "TaskGroup")
    -- Python's `raise ... from None`: the error that unwound the body
    -- is kept (eg.context) but not shown -- it is in the group, or it is
    -- the cancellation the group's failure caused
    eg.context, eg.suppress_context = err, true
    -- where each child failed (false for the body's own error)
    eg.tracebacks = {}
    for i = 1, #errors do eg.tracebacks[i] = self._tracebacks[i] or false end
    -- raised after the stack unwound: say where the body was instead
    local where = self._where
    if where then
      eg.traceback = where
      core.note_where(eg, "\n(the task group's body was waiting at:)\n" .. where)
    end
    error(eg, 0)
  end
end

local function enter()
  local parent = core.current_task()
  if parent == nil then
    error("TaskGroup: needs a running task (called outside a task)", 3)
  end
  local self = setmetatable({
    _loop = core.get_running_loop(), _parent = parent, _tasks = {},
    _ntasks = 0, _errors = {}, _tracebacks = {}, _aborting = false, _exiting = false,
    _parent_cancel_requested = false,
  }, TaskGroup)
  self._cb = function(t) on_task_done(self, t) end
  return self
end

local function run_body(tg, body, ...)
  local _ <close> = tg
  return body(tg, ...)
end

--- aio.TaskGroup() -> group for a <close> variable;
--- aio.TaskGroup(body, ...) -> body's results, once every child is done.
function M.TaskGroup(body, ...)
  if body ~= nil and type(body) ~= "function" then
    error(("bad argument #1 to 'TaskGroup' (function expected, got %s)")
      :format(type(body)), 2)
  end
  local tg = enter()
  if body == nil then return tg end
  return run_body(tg, body, ...)
end

M.TaskGroupClass = TaskGroup

return M
