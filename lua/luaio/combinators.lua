-- luaio.combinators: gather, wait, wait_for, as_completed, shield.
--
-- Semantics are asyncio 3.13's (tasks.py), in Lua's spelling:
--
-- gather(aws [, {return_exceptions}]) -> results list (.n)
--   Suspends until every child is done.  Functions are spawned as tasks;
--   values with __await are awaited in a task.  Without return_exceptions
--   the first error is raised at once and the others keep running.
--   Cancelling the caller cancels every child; the caller then gets
--   CancelledError once the group has settled.
-- wait(aws [, {timeout, return_when}]) -> done, pending
--   Tasks and futures only.  Never cancels anything; a timeout only ends
--   the wait.  Cancelling the caller raises CancelledError from wait and
--   leaves the tasks alone.
-- wait_for(aw, timeout) -> results
--   Built on timeout(): on expiry the awaited task is cancelled, waited
--   for, and TimeoutError raised.  Cancelling the caller cancels aw.
-- as_completed(aws [, {timeout}]) -> iterator over the awaitables in
--   completion order; raises TimeoutError when the next one is late.
-- shield(aw) -> results
--   Cancelling the caller raises CancelledError in it but leaves aw running.
local core = require "luaio.core"

local M = {}

M.FIRST_COMPLETED = "FIRST_COMPLETED"
M.FIRST_EXCEPTION = "FIRST_EXCEPTION"
M.ALL_COMPLETED = "ALL_COMPLETED"

local reg = debug.getregistry()
local task_mt, future_mt = reg["luaio.Task"], reg["luaio.Future"]

local function isfuture(x)
  local mt = getmetatable(x)
  return mt == task_mt or mt == future_mt
end

-- level: where the caller of the public function is (4 from a checker
-- called by it, 3 when called by the public function itself).
local function argerror(n, fname, msg, level)
  error(("bad argument #%d to '%s' (%s)"):format(n, fname, msg), level or 4)
end

local function typename(x)
  local mt = getmetatable(x)
  return type(mt) == "table" and type(mt.__name) == "string" and mt.__name or type(x)
end

-- A Task or Future for an awaitable: futures as they are, functions
-- spawned, values with __await awaited in a new task.
local function ensure(x, fname, n, level)
  if isfuture(x) then return x end
  if type(x) == "function" then return core.create_task(x) end
  local mt = getmetatable(x)
  local aw = type(mt) == "table" and rawget(mt, "__await")
  if aw then return core.create_task(aw, x) end
  error(("bad argument #%d to '%s' (list of awaitables expected, got %s in it)")
    :format(n, fname, typename(x)), level or 3)
end
M._ensure = ensure
local gather_start, gather_failed = core.gather_start, core.gather_failed

local function checklist(aws, fname)
  if type(aws) ~= "table" or isfuture(aws) then
    argerror(1, fname, "list of awaitables expected, got " .. typename(aws))
  end
  return aws.n or #aws
end

local OPTIONS = {
  gather = { return_exceptions = true },
  wait = { timeout = true, return_when = true },
  as_completed = { timeout = true },
}

local function checkopts(opts, fname, n)
  if opts ~= nil and type(opts) ~= "table" then
    argerror(n, fname, "options table expected, got " .. typename(opts))
  end
  core.check_options(opts, fname, OPTIONS[fname], 3)
  return opts or {}
end

local function checktimeout(t, fname)
  if t ~= nil and (type(t) ~= "number" or t ~= t) then
    argerror(2, fname, "timeout must be a number or nil")
  end
end

------------------------------------------------------------------ gather
-- The bookkeeping (a callback per child, the result list, cancelling the
-- children) is in C: gather.c.
function M.gather(aws, opts)
  local n = checklist(aws, "gather")
  if opts ~= nil then checkopts(opts, "gather", 2) end
  if n == 0 then return { n = 0 } end
  local outer, state = gather_start(aws, n, opts ~= nil and opts.return_exceptions, ensure)
  local ok, res = pcall(outer.await, outer)
  if ok then return res end
  -- the traceback of whoever dies of it shows where the child raised it
  local failed = gather_failed(state)
  if failed and getmetatable(failed) == task_mt then core.note_cause(failed, res) end
  error(res, 0)
end

------------------------------------------------------------------ wait
function M.wait(aws, opts)
  local n = checklist(aws, "wait")
  opts = checkopts(opts, "wait", 2)
  local timeout, return_when = opts.timeout, opts.return_when or M.ALL_COMPLETED
  checktimeout(timeout, "wait")
  if return_when ~= M.FIRST_COMPLETED and return_when ~= M.FIRST_EXCEPTION
      and return_when ~= M.ALL_COMPLETED then
    argerror(2, "wait", "invalid return_when value: " .. tostring(return_when), 3)
  end
  local fs, seen = {}, {}
  for i = 1, n do
    local f = aws[i]
    if not isfuture(f) then
      argerror(1, "wait", "tasks or futures expected, got " .. typename(f)
        .. " (wrap functions with aio.create_task)", 3)
    end
    if not seen[f] then seen[f] = true; fs[#fs + 1] = f end
  end
  if #fs == 0 then argerror(1, "wait", "the list of tasks is empty", 3) end

  local loop = core.get_running_loop()
  local waiter = core.Future()
  local counter = #fs
  local order = {}
  local timer
  local function on_completion(f)
    counter = counter - 1
    order[#order + 1] = f
    if counter <= 0 or return_when == M.FIRST_COMPLETED
        or (return_when == M.FIRST_EXCEPTION and not f:cancelled()
            and f:exception() ~= nil) then
      if timer then timer:cancel() end
      if not waiter:done() then waiter:set_result() end
    end
  end
  if timeout ~= nil then
    timer = loop:call_later(timeout, function()
      if not waiter:done() then waiter:set_result() end
    end)
  end
  for _, f in ipairs(fs) do f:add_done_callback(on_completion) end
  local ok, err = pcall(waiter.await, waiter)
  if timer then timer:cancel() end
  for _, f in ipairs(fs) do f:remove_done_callback(on_completion) end
  if not ok then error(err, 0) end
  local done, pending, listed = {}, {}, {}
  for _, f in ipairs(order) do
    if not listed[f] then listed[f] = true; done[#done + 1] = f end
  end
  for _, f in ipairs(fs) do
    if not listed[f] then
      if f:done() then done[#done + 1] = f else pending[#pending + 1] = f end
    end
  end
  return done, pending
end

------------------------------------------------------------------ wait_for
local function cancel_and_wait(t)
  local waiter = core.Future()
  local function cb() if not waiter:done() then waiter:set_result() end end
  t:add_done_callback(cb)
  local ok, err = pcall(function()
    t:cancel()
    waiter:await()
  end)
  t:remove_done_callback(cb)
  if not ok then error(err, 0) end
end

function M.wait_for(aw, timeout)
  checktimeout(timeout, "wait_for")
  -- A function starts eagerly: its deadline and the timeout's are set
  -- together, so a burst of wait_for calls times out only what is late.
  local t
  if type(aw) == "function" then t = core.create_eager_task(aw)
  else t = ensure(aw, "wait_for", 1) end
  if timeout ~= nil and timeout <= 0 then
    if t:done() then return t:result() end
    cancel_and_wait(t)
    if t:cancelled() then   -- its CancelledError is the cause, as in asyncio
      local _, cancelled = pcall(t.result, t)
      error(core.TimeoutError(nil, { cause = cancelled, context = cancelled }), 0)
    end
    return t:result()
  end
  local _ <close> = M._timeouts.timeout(timeout)
  return t:await()
end

------------------------------------------------------------------ as_completed
function M.as_completed(aws, opts)
  local n = checklist(aws, "as_completed")
  local timeout = checkopts(opts, "as_completed", 2).timeout
  checktimeout(timeout, "as_completed")
  local loop = core.get_running_loop()
  local todo, seen = {}, {}
  for i = 1, n do
    local a = aws[i]
    if seen[a] == nil then
      local f = ensure(a, "as_completed", 1)
      seen[a] = f
      todo[#todo + 1] = f
    end
  end
  local total, given = #todo, 0
  local ready, head, tail = {}, 1, 0
  local waiter
  local function on_done(f)
    tail = tail + 1
    ready[tail] = f
    if waiter and not waiter:done() then waiter:set_result() end
  end
  for _, f in ipairs(todo) do f:add_done_callback(on_done) end
  local deadline = timeout and loop:time() + timeout
  local expired = false
  local function stop()
    for _, f in ipairs(todo) do f:remove_done_callback(on_done) end
  end
  return function()
    if given >= total then return nil end
    if expired then error(core.TimeoutError(), 2) end
    while ready[head] == nil do
      waiter = core.Future()
      local ok, err
      if deadline then
        ok, err = pcall(M.wait_for, waiter, deadline - loop:time())
      else
        ok, err = pcall(waiter.await, waiter)
      end
      waiter = nil
      if not ok then
        if core.is(err, core.TimeoutError) then expired = true end
        stop()
        error(err, 0)
      end
    end
    local f = ready[head]
    ready[head] = nil
    head = head + 1
    given = given + 1
    if given >= total then stop() end
    return f
  end
end

------------------------------------------------------------------ shield
local function pack(...) return { n = select("#", ...), ... } end

function M.shield(aw)
  local inner = ensure(aw, "shield", 1)
  if inner:done() then return inner:result() end
  local outer = core.Future()
  local function inner_done(f)
    if outer:cancelled() then
      if not f:cancelled() then f:exception() end
      return
    end
    if f:cancelled() then
      outer:cancel()
    else
      local err = f:exception()
      if err ~= nil then outer:set_exception(err)
      else
        local r = pack(f:result())
        outer:set_result(table.unpack(r, 1, r.n))
      end
    end
  end
  inner:add_done_callback(inner_done)
  outer:add_done_callback(function()
    if not inner:done() then inner:remove_done_callback(inner_done) end
  end)
  return outer:await()
end

return M
