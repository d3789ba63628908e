-- W5: N tasks each wait_for(sleep(U[0, 20 ms]), 10 ms).
-- Prints: RESULT <wall seconds> <excess timeouts>
local aio = require "luaio"
local n = tonumber(arg[1]) or 10000
local LIMIT = 0.010
math.randomseed(42)
local delays, expected = {}, 0
for i = 1, n do
  delays[i] = math.random() * 0.020
  if delays[i] > LIMIT then expected = expected + 1 end
end
local timed_out, dt = aio.run(function()
  local t0 = aio.time()
  local tasks = {}
  for i = 1, n do
    local d = delays[i]
    tasks[i] = aio.create_task(function()
      local ok, err = pcall(aio.wait_for, function() aio.sleep(d) end, LIMIT)
      if ok then return 0 end
      if aio.is(err, aio.TimeoutError) then return 1 end
      error(err, 0)
    end)
  end
  local s = 0
  for _, v in ipairs(aio.gather(tasks)) do s = s + v end
  return s, aio.time() - t0
end)
print(("RESULT %.4f %d"):format(dt, timed_out - expected))
