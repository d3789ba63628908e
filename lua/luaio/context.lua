-- luaio.context: aio.ContextVar, asyncio's contextvars for tasks, and
-- contexts as values (aio.copy_context, aio.Context, ctx:run,
-- ctx:create_task).
--
-- Each task runs in its creator's context.  A context is an immutable
-- table var -> value: set() makes a new table for the current task (or,
-- outside any task, for the loop), so a task that never sets a variable
-- costs nothing, and what a task sets is seen by the tasks it creates
-- afterwards but never by its creator or its siblings.
--
-- A Context object holds such a table (_map).  ctx:run(fn, ...) makes it
-- the current context while fn runs (it may suspend): a set() then
-- replaces ctx's table, so it is seen through ctx afterwards, and by the
-- other tasks running in ctx.  ctx:create_task(fn, ...) starts a task
-- whose body runs in ctx (asyncio's create_task(coro, context=ctx)).  A
-- task created inside gets a copy of ctx's table, as always (the core
-- unwraps a Context object it finds as the creator's context).
local core = require "luaio.core"

local M = {}

local NIL = setmetatable({}, { __name = "nil" })   -- a stored nil
local MISSING = {}                                 -- token: was unset

local Context = {}
Context.__name = "Context"

-- The context entered by ctx:run where no loop runs (nil: none).
local outside = nil

-- The current context value: a map, or a Context object; nil when none.
local function current_value()
  if core.running_loop() == nil then return outside end
  return core.context()
end

-- The current map (var -> value), or nil.
local function current()
  local v = current_value()
  if getmetatable(v) == Context then return v._map end
  return v
end

local ContextVar = {}
ContextVar.__index = ContextVar
ContextVar.__name = "ContextVar"

--- var:get([default]) -> value, else default, else the var's default;
--- raises when there is none of these.
function ContextVar:get(...)
  if getmetatable(self) ~= ContextVar then core.bad_self(self, "ContextVar", "get") end
  local ctx = current()
  local v = ctx and ctx[self]
  if v ~= nil then
    if v == NIL then return nil end
    return v
  end
  if select("#", ...) > 0 then return (...) end
  if self._has_default then return self.default end
  error(("ContextVar '%s' has no value"):format(self.name), 2)
end

local function write(self, value)
  local cur = current_value()
  local box = getmetatable(cur) == Context and cur or nil
  local ctx = box and box._map or cur
  local new = {}
  for k, v in pairs(ctx) do new[k] = v end
  local old = ctx[self]
  new[self] = value
  if box then box._map = new else core.context(new) end
  return old
end

--- var:set(value) -> token for reset()
function ContextVar:set(value)
  if getmetatable(self) ~= ContextVar then core.bad_self(self, "ContextVar", "set") end
  if core.running_loop() == nil and outside == nil then
    error("ContextVar:set: no running event loop", 2)
  end
  if value == nil then value = NIL end
  local old = write(self, value)
  return { var = self, old = old == nil and MISSING or old, used = false }
end

--- var:reset(token): the value before the set() that made the token.
function ContextVar:reset(token)
  if getmetatable(self) ~= ContextVar then core.bad_self(self, "ContextVar", "reset") end
  if type(token) ~= "table" or token.var ~= self then
    error("bad argument #1 to 'reset' (a token of this ContextVar expected)", 2)
  end
  if token.used then error("ContextVar:reset: the token has already been used", 2) end
  token.used = true
  write(self, token.old ~= MISSING and token.old or nil)
end

function ContextVar:__tostring()
  return ("ContextVar '%s'"):format(self.name)
end

--- aio.ContextVar(name [, default])
function M.ContextVar(name, ...)
  if type(name) ~= "string" then
    error(("bad argument #1 to 'ContextVar' (string expected, got %s)")
      :format(type(name)), 2)
  end
  local has = select("#", ...) > 0
  return setmetatable({ name = name, default = (...), _has_default = has }, ContextVar)
end

------------------------------------------------------------------ Context
local function check(self, name)
  if getmetatable(self) ~= Context then core.bad_self(self, "Context", name, 3) end
end

local function new_context(map)
  return setmetatable({ _map = map }, Context)
end

local function value_of(self, var)
  local v = self._map[var]
  if v == NIL then return nil end
  return v
end

local methods = {}

Context.__index = function(self, k)
  local m = methods[k]
  if m ~= nil then return m end
  if getmetatable(k) == ContextVar then return value_of(self, k) end
  return nil
end

--- ctx:get(var [, default]) -> var's value in ctx, else default (nil)
function methods.get(self, var, default)
  check(self, "get")
  if getmetatable(var) ~= ContextVar then
    error(("bad argument #1 to 'get' (ContextVar expected, got %s)")
      :format(type(var)), 2)
  end
  if self._map[var] == nil then return default end
  return value_of(self, var)
end

--- ctx:copy() -> a new Context with the same values
function methods.copy(self)
  check(self, "copy")
  return new_context(self._map)
end

-- Who enters contexts: the running task, else the loop, else no loop.
local NO_LOOP = {}
local entered = setmetatable({}, { __mode = "k" })   -- who -> {ctx = true}

local function who()
  return core.running_loop() and (core.current_task() or core.get_running_loop())
    or NO_LOOP
end

-- Makes ctx current; returns what to restore.
local function swap(value)
  if core.running_loop() == nil then
    local prev = outside
    outside = value
    return prev
  end
  local prev = core.context()
  core.context(value)
  return prev
end

-- fn must be callable: else the error of method fname's argument #1.
local function check_callable(fn, fname)
  if type(fn) ~= "function" and not (getmetatable(fn) or {}).__call then
    error(("bad argument #1 to '%s' (function expected, got %s)")
      :format(fname, type(fn)), 3)
  end
end

-- Leaves ctx (a <close> value): restores prev where it was taken (in
-- the loop, or where none ran).
local function leaver(set, ctx, prev)
  local looped = core.running_loop() ~= nil
  return setmetatable({}, { __close = function()
    set[ctx] = nil
    if not looped then outside = prev
    elseif core.running_loop() ~= nil then core.context(prev) end
  end })
end

--- ctx:run(fn, ...) -> fn(...)'s results, run with ctx as the current
--- context: what fn sets is set in ctx.  fn may suspend (in a task).
function methods.run(self, fn, ...)
  check(self, "run")
  check_callable(fn, "run")
  local key = who()
  local set = entered[key]
  if set == nil then set = {}; entered[key] = set end
  if set[self] then error("Context:run: the context is already entered", 2) end
  set[self] = true
  local _ <close> = leaver(set, self, swap(self))
  return fn(...)
end

--- ctx:create_task(fn, ...) -> Task whose body runs in ctx (asyncio's
--- create_task(coro, context=ctx)): what it sets is set in ctx.
function methods.create_task(self, fn, ...)
  check(self, "create_task")
  check_callable(fn, "create_task")
  return core.create_task(methods.run, self, fn, ...)
end

Context.__pairs = function(self)
  local map = self._map
  local function step(_, k)
    local nk, v = next(map, k)
    if nk == nil then return nil end
    if v == NIL then v = nil end
    return nk, v
  end
  return step, self, nil
end

Context.__len = function(self)
  local n = 0
  for _ in next, self._map do n = n + 1 end
  return n
end

Context.__tostring = function(self)
  local n = #self
  return ("Context(%d variable%s)"):format(n, n == 1 and "" or "s")
end

-- For Runner:run: where no loop ran, inside ctx:run, the main task starts
-- with a copy of ctx's values (asyncio's Runner copies the context).
function M._main_in_context(fn)
  if outside == nil or core.running_loop() ~= nil then return fn end
  local map = outside._map
  return function(...)
    core.context(map)
    return fn(...)
  end
end

--- aio.copy_context() -> a Context holding the current values
function M.copy_context()
  return new_context(current() or {})
end

--- aio.Context() -> an empty Context
function M.Context()
  return new_context({})
end

M.ContextClass = Context

return M
