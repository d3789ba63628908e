-- luaio.sync: Lock, Event, Condition, Semaphore, BoundedSemaphore,
-- Barrier -- asyncio 3.13's locks.py on the core's C wait lists.
--
-- Single loop, not thread-safe, FIFO-fair.  acquire() returns the object
-- itself, whose __close releases it: `local _ <close> = lock:acquire()`.
-- Suspension points: Lock/Condition/Semaphore acquire, Event.wait,
-- Condition.wait/wait_for, Barrier.wait/reset/abort; each needs a running
-- task.  Cancellation at each (asyncio's rules): a waiter cancelled while
-- it waits leaves the list; one cancelled after a wake-up reached it
-- passes the wake-up on (Lock: to the next waiter if the lock is free;
-- Semaphore: gives the permit back; Condition: notifies another waiter,
-- also when the error comes while it re-takes the lock),
-- so no wake-up or permit is lost.  Condition.wait re-acquires the lock
-- even when cancelled, then raises.
--
-- A waiter woken but not yet running is counted in _woken: it is still
-- "first in line", as asyncio's done-but-not-removed futures are.
local core = require "luaio.core"

local M = {}

local WaitList = core.WaitList
local check_task = core.check_task
local raise_cancel = core.raise_cancel
local CancelledError = core.CancelledError
local bad_self = core.bad_self

local function class(name)
  local c = {}
  c.__index = c
  c.__name = name
  c.__tostring = function(self) return name .. "(" .. self:_state() .. ")" end
  return c
end

local function release_on_close(self) self:release() end

------------------------------------------------------------------ Lock
local Lock = class("Lock")
Lock.__close = release_on_close

--- aio.Lock()
function M.Lock()
  return setmetatable({ _locked = false, _wl = WaitList(), _woken = 0 }, Lock)
end

function Lock:_state()
  return (self._locked and "locked" or "unlocked") .. ", waiters " .. #self._wl
end

function Lock:locked()
  if getmetatable(self) ~= Lock then bad_self(self, "Lock", "locked") end
  return self._locked
end

local function lock_wake_first(self)
  if self._woken == 0 and self._wl:wake_one() then
    self._woken = self._woken + 1
  end
end

--- lock:acquire() -> lock (a guard for <close>)
function Lock:acquire()
  if getmetatable(self) ~= Lock then bad_self(self, "Lock", "acquire") end
  check_task("acquire")
  if not self._locked and #self._wl == 0 and self._woken == 0 then
    self._locked = true
    return self
  end
  local ok, woken = self._wl:wait("Lock.acquire")
  if ok or woken then self._woken = self._woken - 1 end
  if not ok then
    if not self._locked then lock_wake_first(self) end
    raise_cancel()
  end
  self._locked = true
  return self
end

function Lock:release()
  if getmetatable(self) ~= Lock then bad_self(self, "Lock", "release") end
  if not self._locked then error("release: the Lock is not acquired", 2) end
  self._locked = false
  lock_wake_first(self)
end

M.LockClass = Lock

------------------------------------------------------------------ Event
local Event = class("Event")

--- aio.Event()
function M.Event()
  return setmetatable({ _value = false, _wl = WaitList() }, Event)
end

function Event:_state()
  return (self._value and "set" or "unset") .. ", waiters " .. #self._wl
end

function Event:is_set()
  if getmetatable(self) ~= Event then bad_self(self, "Event", "is_set") end
  return self._value
end

function Event:set()
  if getmetatable(self) ~= Event then bad_self(self, "Event", "set") end
  if not self._value then
    self._value = true
    self._wl:wake_all()
  end
end

function Event:clear()
  if getmetatable(self) ~= Event then bad_self(self, "Event", "clear") end
  self._value = false
end

--- event:wait() -> true once the event is set
function Event:wait()
  if getmetatable(self) ~= Event then bad_self(self, "Event", "wait") end
  check_task("wait")
  if self._value then return true end
  if not self._wl:wait("Event.wait") then raise_cancel() end
  return true
end

------------------------------------------------------------------ Condition
local Condition = class("Condition")
Condition.__close = release_on_close

--- aio.Condition([lock])
function M.Condition(lock)
  if lock == nil then lock = M.Lock()
  elseif getmetatable(lock) ~= Lock then
    error(("bad argument #1 to 'Condition' (Lock expected, got %s)"):format(type(lock)), 2)
  end
  return setmetatable({ _lock = lock, _wl = WaitList() }, Condition)
end

function Condition:_state()
  return self._lock:_state() .. ", waiting " .. #self._wl
end

function Condition:acquire()
  if getmetatable(self) ~= Condition then bad_self(self, "Condition", "acquire") end
  self._lock:acquire()
  return self
end
function Condition:release()
  if getmetatable(self) ~= Condition then bad_self(self, "Condition", "release") end
  self._lock:release()
end
function Condition:locked()
  if getmetatable(self) ~= Condition then bad_self(self, "Condition", "locked") end
  return self._lock:locked()
end

local function notify(self, n)
  for _ = 1, n do
    if not self._wl:wake_one() then break end
  end
end

--- cond:wait() -> true; releases the lock while waiting, holds it again
--- when it returns (or raises).
function Condition:wait()
  if getmetatable(self) ~= Condition then bad_self(self, "Condition", "wait") end
  check_task("wait")
  if not self._lock:locked() then
    error("wait: cannot wait on an un-acquired lock", 2)
  end
  self._lock:release()
  local ok, woken = self._wl:wait("Condition.wait")
  -- Hold the lock again, even when cancelled.
  local err
  while true do
    local got, e = pcall(self._lock.acquire, self._lock)
    if got then break end
    if not core.is(e, CancelledError) then err = e; break end
    err = e
  end
  if ok and err == nil then return true end
  -- Leaving with an error after a notification reached us (here, or
  -- while re-taking the lock): it goes to another waiter (asyncio).
  if ok or woken then notify(self, 1) end
  if err ~= nil then error(err, 0) end
  raise_cancel()
end

--- cond:wait_for(predicate) -> the predicate's first true value
function Condition:wait_for(predicate)
  if getmetatable(self) ~= Condition then bad_self(self, "Condition", "wait_for") end
  if type(predicate) ~= "function" then
    error(("bad argument #1 to 'wait_for' (function expected, got %s)"):format(type(predicate)), 2)
  end
  local result = predicate()
  while not result do
    self:wait()
    result = predicate()
  end
  return result
end

function Condition:notify(n)
  if getmetatable(self) ~= Condition then bad_self(self, "Condition", "notify") end
  if not self._lock:locked() then
    error("notify: cannot notify on an un-acquired lock", 2)
  end
  if n ~= nil and (math.type(n) ~= "integer" or n < 0) then
    error("bad argument #1 to 'notify' (non-negative integer expected)", 2)
  end
  notify(self, n or 1)
end

function Condition:notify_all()
  if getmetatable(self) ~= Condition then bad_self(self, "Condition", "notify_all") end
  if not self._lock:locked() then
    error("notify_all: cannot notify on an un-acquired lock", 2)
  end
  notify(self, #self._wl)
end

------------------------------------------------------------------ Semaphore
local Semaphore = class("Semaphore")
local SEMAPHORES = { [Semaphore] = true }   -- and BoundedSemaphore, below
Semaphore.__close = release_on_close

local function new_semaphore(cls, fname, value)
  if value == nil then value = 1 end
  if math.type(value) ~= "integer" then
    error(("bad argument #1 to '%s' (integer expected, got %s)"):format(fname, type(value)), 3)
  end
  if value < 0 then error(fname .. ": the initial value must be >= 0", 3) end
  return setmetatable({ _value = value, _bound = value, _wl = WaitList(), _woken = 0 }, cls)
end

--- aio.Semaphore([value = 1])
function M.Semaphore(value)
  return new_semaphore(Semaphore, "Semaphore", value)
end

function Semaphore:_state()
  return "value " .. self._value .. ", waiters " .. #self._wl
end

function Semaphore:locked()
  if not SEMAPHORES[getmetatable(self)] then bad_self(self, "Semaphore", "locked") end
  return self._value == 0 or #self._wl > 0 or self._woken > 0
end

local function sem_wake_next(self)
  if #self._wl == 0 then return false end
  self._value = self._value - 1
  self._wl:wake_one()
  self._woken = self._woken + 1
  return true
end

--- sem:acquire() -> sem (a guard for <close>)
function Semaphore:acquire()
  if not SEMAPHORES[getmetatable(self)] then bad_self(self, "Semaphore", "acquire") end
  check_task("acquire")
  if not self:locked() then
    self._value = self._value - 1
    return self
  end
  local ok, woken = self._wl:wait("Semaphore.acquire")
  if ok or woken then self._woken = self._woken - 1 end
  -- cancelled after a permit was handed to us: give it back
  if not ok and woken then self._value = self._value + 1 end
  while self._value > 0 do
    if not sem_wake_next(self) then break end
  end
  if not ok then raise_cancel() end
  return self
end

function Semaphore:release()
  if not SEMAPHORES[getmetatable(self)] then bad_self(self, "Semaphore", "release") end
  if self._value == math.maxinteger then    -- +1 would wrap around to minint
    error("release: the Semaphore's value would overflow", 2)
  end
  self._value = self._value + 1
  sem_wake_next(self)
end

M.SemaphoreClass = Semaphore

local BoundedSemaphore = class("BoundedSemaphore")
for k, v in pairs(Semaphore) do
  if k ~= "__index" and k ~= "__name" and k ~= "__tostring" then BoundedSemaphore[k] = v end
end
BoundedSemaphore.__close = release_on_close
SEMAPHORES[BoundedSemaphore] = true

--- aio.BoundedSemaphore([value = 1]): releasing above value is an error.
function M.BoundedSemaphore(value)
  return new_semaphore(BoundedSemaphore, "BoundedSemaphore", value)
end

function BoundedSemaphore:release()
  if getmetatable(self) ~= BoundedSemaphore then bad_self(self, "BoundedSemaphore", "release") end
  if self._value >= self._bound then
    error("release: BoundedSemaphore released too many times", 2)
  end
  Semaphore.release(self)
end

------------------------------------------------------------------ Barrier
local Barrier = class("Barrier")

local FILLING, DRAINING, RESETTING, BROKEN = "filling", "draining", "resetting", "broken"

local function update(self)
  self.n_waiting = self._state == FILLING and self._count or 0
  self.broken = self._state == BROKEN
end

--- aio.Barrier(parties): fields parties, n_waiting, broken.
function M.Barrier(parties)
  if math.type(parties) ~= "integer" then
    error(("bad argument #1 to 'Barrier' (integer expected, got %s)"):format(type(parties)), 2)
  end
  if parties < 1 then error("Barrier: parties must be > 0", 2) end
  local self = setmetatable({ _cond = M.Condition(), parties = parties,
    _state = FILLING, _count = 0 }, Barrier)
  update(self)
  return self
end

function Barrier:_state_name() return self._state end
Barrier.__tostring = function(self)
  return ("Barrier(%s, waiters %d/%d)"):format(self._state, self.n_waiting, self.parties)
end

local function barrier_exit(self)
  if self._count == 0 then
    if self._state == RESETTING or self._state == DRAINING then self._state = FILLING end
    self._cond:notify_all()
  end
  update(self)
end

local function barrier_body(self)
  self._cond:wait_for(function()
    return self._state ~= DRAINING and self._state ~= RESETTING
  end)
  if self._state == BROKEN then error(core.BrokenBarrierError("Barrier aborted"), 0) end
  local index = self._count
  self._count = self._count + 1
  update(self)
  local ok, err = pcall(function()
    if index + 1 == self.parties then
      self._state = DRAINING
      update(self)
      self._cond:notify_all()
    else
      self._cond:wait_for(function() return self._state ~= FILLING end)
      if self._state == BROKEN or self._state == RESETTING then
        error(core.BrokenBarrierError("Abort or reset of barrier"), 0)
      end
    end
  end)
  self._count = self._count - 1
  barrier_exit(self)
  if not ok then error(err, 0) end
  return index
end

--- barrier:wait() -> index in 0..parties-1
function Barrier:wait()
  if getmetatable(self) ~= Barrier then bad_self(self, "Barrier", "wait") end
  check_task("wait")
  local _ <close> = self._cond:acquire()
  return barrier_body(self)
end

--- barrier:reset(): back to empty; waiting tasks get BrokenBarrierError.
function Barrier:reset()
  if getmetatable(self) ~= Barrier then bad_self(self, "Barrier", "reset") end
  check_task("reset")
  local _ <close> = self._cond:acquire()
  if self._count > 0 then
    if self._state ~= RESETTING then self._state = RESETTING end
  else
    self._state = FILLING
  end
  update(self)
  self._cond:notify_all()
end

--- barrier:abort(): broken; waiting and future callers get BrokenBarrierError.
function Barrier:abort()
  if getmetatable(self) ~= Barrier then bad_self(self, "Barrier", "abort") end
  check_task("abort")
  local _ <close> = self._cond:acquire()
  self._state = BROKEN
  update(self)
  self._cond:notify_all()
end

return M
