-- W1 with bare Lua coroutines, no scheduler: the floor under any Lua task
-- runtime.  N coroutines, each a closure that yields once and returns i;
-- all resumed once, then again to finish.  Prints: RESULT <tasks/s> <peak RSS KiB>
local n = tonumber(arg[1]) or 100000
local create, resume, yield = coroutine.create, coroutine.resume, coroutine.yield
package.path = (arg[0]:match("(.*/)") or "./") .. "../?.lua;" .. package.path
local peak_kb = require("procstatus").peak_kb
local t0 = os.clock()
local cos = {}
for i = 1, n do
  local co = create(function() yield(); return i end)
  resume(co)
  cos[i] = co
end
local s = 0
for i = 1, n do
  local _, v = resume(cos[i])
  s = s + v
end
local dt = os.clock() - t0
assert(s == n * (n + 1) // 2)
print(("RESULT %.0f %d"):format(n / dt, peak_kb()))
