-- luaio.context: aio.ContextVar, asyncio's contextvars for tasks.
--
-- Each task runs in its creator's context.  A context is an immutable
-- table var -> value: set() makes a new table for the current task (or,
-- outside any task, for the loop), so a task that never sets a variable
-- costs nothing, and what a task sets is seen by the tasks it creates
-- afterwards but never by its creator or its siblings.
local core = require "luaio.core"

local M = {}

local NIL = setmetatable({}, { __name = "nil" })   -- a stored nil
local MISSING = {}                                 -- token: was unset

local ContextVar = {}
ContextVar.__index = ContextVar
ContextVar.__name = "ContextVar"

local function current()
  if core.running_loop() == nil then return nil end
  return core.context()
end

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
  local ctx = core.context()
  local new = {}
  for k, v in pairs(ctx) do new[k] = v end
  local old = ctx[self]
  new[self] = value
  core.context(new)
  return old
end

--- var:set(value) -> token for reset()
function ContextVar:set(value)
  if getmetatable(self) ~= ContextVar then core.bad_self(self, "ContextVar", "set") end
  if core.running_loop() == nil then
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

--- aio.copy_context() -> a snapshot table var -> value
function M.copy_context()
  local ctx = current() or {}
  local out = {}
  for k, v in pairs(ctx) do out[k] = v ~= NIL and v or nil end
  return out
end

return M
