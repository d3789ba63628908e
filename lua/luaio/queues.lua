-- luaio.queues: Queue, LifoQueue, PriorityQueue (asyncio 3.13 queues.py).
--
-- Storage and waiting are in C (runtime/queue.c); this file makes the
-- classes.  A queue is a table {[1] = C queue, maxsize = n}.
--   put(x) / get()            suspend while full / empty (need a task)
--   put_nowait / get_nowait   raise aio.QueueFull / aio.QueueEmpty
--   qsize, empty, full, maxsize (nil or <= 0: unbounded)
--   task_done(), join()       join waits until every item put is done
--   shutdown([immediate])     puts raise aio.QueueShutDown; gets too once
--                             the queue is empty (at once if immediate,
--                             which also drops the items)
-- put and get are also copied into each queue table: a method found in the
-- object itself skips the class look-up through __index (W2, two tasks
-- bouncing an item through two queues: -13 % instructions per round trip).
-- Cancellation: a cancelled get or put loses no item and no slot (a
-- wake-up it received is passed to the next waiter).  nil cannot be
-- queued.  PriorityQueue orders by `<`, or by less(a, b) when given.
local core = require "luaio.core"

local M = {}

local function class(name)
  local c = {}
  for k, v in pairs(core.QueueMethods) do c[k] = v end
  c.__index = c
  c.__name = name
  c.__tostring = function(self)
    return ("%s(maxsize=%d, qsize=%d)"):format(name, self.maxsize, self:qsize())
  end
  return c
end

local function checkmax(fname, maxsize)
  if maxsize ~= nil and math.type(maxsize) ~= "integer" then
    error(("bad argument #1 to '%s' (integer expected, got %s)"):format(
      fname, math.type(maxsize) or type(maxsize)), 3)
  end
  return maxsize or 0
end

M.QueueClass = class("Queue")
M.LifoQueueClass = class("LifoQueue")
M.PriorityQueueClass = class("PriorityQueue")

local function new(cq, maxsize, cls)
  return setmetatable({ cq, maxsize = maxsize, put = cls.put, get = cls.get }, cls)
end

--- aio.Queue([maxsize])
function M.Queue(maxsize)
  maxsize = checkmax("Queue", maxsize)
  return new(core.new_queue("fifo", maxsize), maxsize, M.QueueClass)
end

--- aio.LifoQueue([maxsize])
function M.LifoQueue(maxsize)
  maxsize = checkmax("LifoQueue", maxsize)
  return new(core.new_queue("lifo", maxsize), maxsize, M.LifoQueueClass)
end

--- aio.PriorityQueue([maxsize [, less]])
function M.PriorityQueue(maxsize, less)
  maxsize = checkmax("PriorityQueue", maxsize)
  if less ~= nil and type(less) ~= "function" then
    error(("bad argument #2 to 'PriorityQueue' (function expected, got %s)"):format(type(less)), 2)
  end
  return new(core.new_queue("priority", maxsize, less), maxsize, M.PriorityQueueClass)
end

return M
