-- demo.lua -- the example C module (hashpool.so) at work: the same script
-- runs under the luaio CLI, stock lua5.4 (aio.run) and a C host.
local aio = require "luaio"
local hp = require "hashpool"

local function main()
  print("digest", hp.digest("hello"))
  print("rounds", hp.digest("hello", 1000))
  local r = aio.gather({ function() return hp.digest("a", 300000) end,
                         function() return hp.digest("b", 10) end })
  print("gather", r[1], r[2])
  print("bad argument", pcall(hp.digest, "x", 0))
  local t0 = aio.time()
  print("sleep", hp.sleep(20), aio.time() - t0 >= 0.015)
  local t = aio.create_task(hp.sleep, 60000)
  aio.sleep(0.01)
  t:cancel()
  print("cancelled", aio.is(select(2, pcall(t.await, t)), aio.CancelledError))
  local ok, err = pcall(aio.wait_for, aio.create_task(hp.sleep, 60000), 0.01)
  print("timeout", ok, aio.is(err, aio.TimeoutError))
  -- jobs cancelled while queued or running on the pool
  local jobs = {}
  for i = 1, 8 do jobs[i] = aio.create_task(hp.digest, "z" .. i, 2000000) end
  aio.sleep(0)
  for i = 1, 8 do jobs[i]:cancel() end
  local done = 0
  for i = 1, 8 do if pcall(jobs[i].await, jobs[i]) then done = done + 1 end end
  print("pool cancelled", done == 0)
  -- a job on a thread of the module's own, under a hold (without it the
  -- loop would see nothing left to wait for)
  print("thread", hp.digest_thread("hello", 1000))
  -- cancellations racing the threads' completions: each task gets its
  -- digest or CancelledError, and every thread is joined
  local bad = 0
  for i = 1, 50 do
    local tj = aio.create_task(hp.digest_thread, "r" .. i, 20000)
    if i % 2 == 0 then aio.sleep(0) end
    tj:cancel()
    local okj, e = pcall(tj.await, tj)
    if not okj and not aio.is(e, aio.CancelledError) then bad = bad + 1 end
  end
  while hp.threads() > 0 do aio.sleep(0.001) end
  print("thread race", bad, hp.threads())
  aio.get_running_loop():call_soon(function()
    print("outside a task", pcall(hp.sleep, 1))
  end)
  aio.sleep(0)
  return "done"
end

if pcall(aio.get_running_loop) then   -- the CLI, or a host: in a task
  print(main())
else                                  -- stock lua5.4
  print(aio.run(main))
end
