-- W1wave with bare Lua coroutines, no scheduler: waves of 1,000, each a
-- closure on a pooled coroutine that yields once and returns i.  The floor
-- under any Lua task runtime.  Prints: RESULT <tasks/s>
local n = tonumber(arg[1]) or 1000000
local create, resume, yield = coroutine.create, coroutine.resume, coroutine.yield
local pool, np = {}, 0
local function runner(f)
  while true do f = yield(f()) end
end
local t0 = os.clock()
local s = 0
for base = 0, n - 1, 1000 do
  local m = math.min(1000, n - base)
  local cos = {}
  for j = 1, m do
    local i = base + j
    local co
    if np > 0 then co = pool[np]; pool[np] = nil; np = np - 1
    else co = create(runner) end
    resume(co, function() yield(); return i end)
    cos[j] = co
  end
  for j = 1, m do
    local co = cos[j]
    local _, v = resume(co)
    s = s + v
    np = np + 1; pool[np] = co
  end
end
local dt = os.clock() - t0
assert(s == n * (n + 1) // 2)
print(("RESULT %.0f"):format(n / dt))
