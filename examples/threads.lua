-- threads.lua: CPU-bound work on a worker thread while the loop keeps going.
-- expect: ticks while computing: yes
local aio = require "luaio"

-- No upvalues: a to_thread function runs in another Lua state and sees
-- only its arguments and the standard library.
local function count_primes(limit)
  local n = 0
  for i = 2, limit do
    local prime = true
    for d = 2, math.floor(math.sqrt(i)) do
      if i % d == 0 then prime = false; break end
    end
    if prime then n = n + 1 end
  end
  return n
end

local ticks = 0
local ticker = aio.create_task(function()
  while true do aio.sleep(0.005); ticks = ticks + 1 end
end)

local primes = aio.to_thread(count_primes, 300000)
print("primes below 300000: " .. primes)
print("ticks while computing: " .. (ticks > 2 and "yes" or "no"))
ticker:cancel()

-- arguments and results are copied; errors come back to the caller
local t = aio.to_thread(function(cfg) return { doubled = cfg.n * 2 } end, { n = 21 })
print("copied table: " .. t.doubled)
local _, err = pcall(aio.to_thread, function() error("worker failed", 0) end)
print("error from the worker: " .. tostring(err))
