-- luaio.timeouts: aio.timeout(delay) and aio.timeout_at(when) -- asyncio's
-- `async with timeout(...)` as a to-be-closed value:
--
--   local cm <close> = aio.timeout(2)
--
-- Making the scope enters it: it records the current task and its
-- cancelling() count and arms a timer.  On expiry the task is cancelled
-- (CancelledError at its suspension point).  When the scope closes, the
-- timer is dropped; if this scope's own cancellation is what is unwinding
-- (uncancel() brings the count back to where it was), the CancelledError
-- becomes TimeoutError.  A cancellation from outside, or an inner scope's,
-- passes through untouched, so scopes nest.  The function form
-- aio.timeout(delay, fn, ...) runs fn(cm, ...) inside a scope.
--
-- The TimeoutError is made in __close, often after the stack unwound,
-- where it would say nothing of the user's code: so when the deadline
-- cancels the task, the task's stack (where it was suspended) is kept,
-- and becomes the error's traceback and the end of the task's.
--
-- cm:when(), cm:reschedule(when) (absolute, loop:time(); nil = never),
-- cm:expired().  delay = nil means no deadline until rescheduled.
local core = require "luaio.core"

local M = {}

local CREATED, ENTERED, EXPIRING, EXPIRED, EXITED =
  "created", "active", "expiring", "expired", "finished"   -- (asyncio's words)

local Timeout = {}
Timeout.__index = Timeout
Timeout.__name = "Timeout"

local function check(self, name)
  if getmetatable(self) ~= Timeout then core.bad_self(self, "Timeout", name, 3) end
end

function Timeout:when()
  check(self, "when")
  return self._when
end

function Timeout:expired()
  check(self, "expired")
  return self._state == EXPIRING or self._state == EXPIRED
end

local function on_timeout(self, from_timer)
  if self._state ~= ENTERED then return end
  -- A deadline reached by the timer while the task has already been woken
  -- (what it awaited finished earlier, in the same pass of the loop): let
  -- it run once first.  If it leaves the scope there was no timeout; if it
  -- waits again it is cancelled then.  (asyncio cancels it at once, so a
  -- burst of wait_for calls there times out nearly every wait.)
  local _, _, state, _, cancel_pending = self._task:_info()
  if from_timer and not self._deferred and state == "scheduled"
      and not cancel_pending then
    self._deferred = true
    self._handle = self._loop:call_soon(on_timeout, self)
    return
  end
  self._where = self._task:_where()   -- suspended: the user's line
  self._task:cancel()
  self._state = EXPIRING
  self._handle = nil
end

function Timeout:reschedule(when)
  check(self, "reschedule")
  if when ~= nil and (type(when) ~= "number" or when ~= when) then
    error(("bad argument #1 to 'reschedule' (number or nil expected, got %s)")
      :format(type(when)), 2)
  end
  if self._state ~= ENTERED then
    error(("reschedule: the timeout is %s, not active"):format(self._state), 2)
  end
  self._when = when
  if self._handle then self._handle:cancel() end
  if when == nil then
    self._handle = nil
  else
    local loop = self._loop
    if when <= loop:time() then
      self._handle = loop:call_soon(on_timeout, self)
    else
      self._handle = loop:call_at(when, on_timeout, self, true)
    end
  end
end

function Timeout:__close(err)
  -- Misuse (asyncio's "already entered"): a scope is entered when made and
  -- exited once, in the task that made it.
  if self._state ~= ENTERED and self._state ~= EXPIRING then
    error("Timeout: closed twice (a timeout is entered when it is made and "
      .. "exited once: make a new one)", 0)
  end
  if core.current_task() ~= self._task and core.can_suspend() then
    error("Timeout: closed in a task other than the one that made it", 0)
  end
  if self._handle then
    self._handle:cancel()
    self._handle = nil
  end
  if self._state == EXPIRING then
    self._state = EXPIRED
    if self._task:uncancel() <= self._cancelling and err ~= nil
        and core.is(err, core.CancelledError) then
      -- Python's `raise TimeoutError from exc`: the cancellation is its cause
      local where = self._where
      local e = core.TimeoutError(nil, { traceback = where, cause = err, context = err })
      if where then
        core.note_where(e, "\n(the deadline passed while the task waited at:)\n" .. where)
      end
      error(e, 0)
    end
  else
    self._state = EXITED
  end
end

function Timeout:__tostring()
  return ("Timeout(when=%s, %s)"):format(tostring(self._when), self._state)
end

local function enter(when, fname)
  local task = core.current_task()
  if task == nil then
    error(fname .. ": needs a running task (called outside a task)", 3)
  end
  local self = setmetatable({
    _state = CREATED, _when = when, _task = task,
    _loop = core.get_running_loop(), _cancelling = task:cancelling(),
  }, Timeout)
  self._state = ENTERED
  self:reschedule(when)
  return self
end

local function run_in(cm, fn, ...)
  local _ <close> = cm
  return fn(cm, ...)
end

local function make(when, fname, fn, ...)
  if fn ~= nil and type(fn) ~= "function" then
    error(("bad argument #2 to '%s' (function expected, got %s)")
      :format(fname, type(fn)), 3)
  end
  local cm = enter(when, fname)
  if fn == nil then return cm end
  return run_in(cm, fn, ...)
end

--- aio.timeout(delay [, fn, ...])
function M.timeout(delay, fn, ...)
  if delay ~= nil and (type(delay) ~= "number" or delay ~= delay) then
    error(("bad argument #1 to 'timeout' (number or nil expected, got %s)")
      :format(delay ~= delay and "NaN" or type(delay)), 2)
  end
  local when = nil
  if delay ~= nil then when = core.get_running_loop():time() + delay end
  return make(when, "timeout", fn, ...)
end

--- aio.timeout_at(when [, fn, ...])
function M.timeout_at(when, fn, ...)
  if when ~= nil and (type(when) ~= "number" or when ~= when) then
    error(("bad argument #1 to 'timeout_at' (number or nil expected, got %s)")
      :format(when ~= when and "NaN" or type(when)), 2)
  end
  return make(when, "timeout_at", fn, ...)
end

M.Timeout = Timeout

return M
