-- workers.lua: producers and consumers sharing a bounded queue, a
-- semaphore limiting concurrency, and a lock around a shared counter.
-- expect: processed 20 jobs
local aio = require "luaio"

local jobs = aio.Queue(4)              -- producers wait when 4 are pending
local limit = aio.Semaphore(2)         -- at most 2 "downloads" at once
local lock = aio.Lock()
local done, active, peak = 0, 0, 0

local function consumer()
  while true do
    local ok, job = pcall(jobs.get, jobs)
    if not ok then return end          -- QueueShutDown: no more work
    do
      local _ <close> = limit:acquire()
      active = active + 1
      peak = math.max(peak, active)
      aio.sleep(0.002 * (job % 3))     -- simulated work
      active = active - 1
    end
    do
      local _ <close> = lock:acquire()
      done = done + 1
    end
    jobs:task_done()
  end
end

local workers = {}
for i = 1, 3 do workers[i] = aio.create_task(consumer) end
for j = 1, 20 do jobs:put(j) end      -- suspends while the queue is full
jobs:join()                            -- every job marked done
jobs:shutdown()                        -- consumers' get() now raises
aio.gather(workers)
print(("processed %d jobs, at most %d at once"):format(done, peak))
