-- Fuzz target: the value marshalling of aio.to_thread.  The input is
-- decoded into argument values (nil, booleans, integers, floats with
-- NaN/inf/-0.0, binary strings, nested tables with any key types, shared
-- subtables; now and then a cycle, a function, a coroutine or a table with
-- a metatable, which must be refused with a clear error).  A worker
-- returns its arguments; they must come back equal, type for type.
local aio = require "luaio"

local function fail(fmt, ...) error(fmt:format(...), 0) end

-- A byte reader over the input.
local function reader(data)
  local i = 0
  return function()
    i = i + 1
    return data:byte(i) or 0
  end, function() return i >= #data end
end

local FLOATS = { 0.0, -0.0, 1.5, -1e308, 1e-310, math.huge, -math.huge, 0 / 0, math.pi }
local INTS = { 0, 1, -1, math.maxinteger, math.mininteger, 255, -256, 1 << 53 }

local function decode(byte, done, depth, tables)
  local b = byte()
  local kind = b % 12
  if kind == 0 then return nil
  elseif kind == 1 then return b >= 128
  elseif kind == 2 then return INTS[byte() % #INTS + 1]
  elseif kind == 3 then return (byte() << 8 | byte()) - 32768
  elseif kind == 4 then return FLOATS[byte() % #FLOATS + 1]
  elseif kind == 5 then return (byte() - 128) / (byte() + 1)
  elseif kind <= 7 then
    local n, s = byte() % 40, {}
    for j = 1, n do s[j] = string.char(byte()) end
    return table.concat(s)
  elseif kind <= 10 and depth < 6 then
    local t = {}
    tables[#tables + 1] = t
    for _ = 1, byte() % 8 do
      if done() then break end
      local k = decode(byte, done, depth + 1, tables)
      local v = decode(byte, done, depth + 1, tables)
      if k ~= nil and k == k and v ~= nil then t[k] = v end
    end
    return t
  elseif kind == 11 then
    local r = byte() % 8
    if r == 0 then return function() end, "bad"
    elseif r == 1 then return coroutine.create(function() end), "bad"
    elseif r == 2 and #tables > 0 then return tables[#tables], "cycle?"
    elseif r == 3 then return setmetatable({}, {}), "bad"
    elseif r == 4 then return io.stdout, "bad"
    end
    return "x"
  end
  return 0
end

-- Deep equality, type for type (integer vs float, NaN equals NaN, -0.0).
local function same(a, b, seen)
  if type(a) ~= type(b) then return false end
  if type(a) == "number" then
    if math.type(a) ~= math.type(b) then return false end
    if a ~= a then return b ~= b end
    if a == 0 and math.type(a) == "float" then return 1 / a == 1 / b end
    return a == b
  end
  if type(a) ~= "table" then return a == b end
  -- (accepted values have no cycles; a shared subtable arrives as copies)
  for k, v in pairs(a) do
    -- keys: find the copy's key (tables as keys are copied too)
    local bv = b[k]
    if type(k) == "table" then
      bv = nil
      for k2, v2 in pairs(b) do
        if type(k2) == "table" and same(k, k2, seen) and same(v, v2, seen) then bv = v2 end
      end
      if bv == nil then return false end
    elseif not same(v, bv, seen) then return false end
  end
  for k in pairs(b) do
    if type(k) ~= "table" and a[k] == nil then return false end
  end
  return true
end

local function has_cycle(v, path)
  if type(v) ~= "table" then return false end
  if path[v] then return true end
  path[v] = true
  for k, x in pairs(v) do
    if has_cycle(k, path) or has_cycle(x, path) then return true end
  end
  path[v] = nil
  return false
end

local function has_bad(v, seen)
  local t = type(v)
  if t == "function" or t == "thread" or t == "userdata" then return true end
  if t ~= "table" then return false end
  if getmetatable(v) ~= nil then return true end
  if seen[v] then return false end
  seen[v] = true
  for k, x in pairs(v) do
    if has_bad(k, seen) or has_bad(x, seen) then return true end
  end
  return false
end

return function(data)
  local byte, done = reader(data)
  local args, n, tables = {}, byte() % 5, {}
  for i = 1, n do args[i] = (decode(byte, done, 0, tables)) end
  local refuse = false
  for i = 1, n do
    if has_bad(args[i], {}) or has_cycle(args[i], {}) then refuse = true end
  end
  aio.run(function()
    local ok, r = pcall(function()
      return table.pack(aio.to_thread(function(...) return ... end, table.unpack(args, 1, n)))
    end)
    if refuse then
      if ok then fail("to_thread accepted a value it cannot copy") end
      if type(r) ~= "string" and not aio.is(r, aio.Error) then fail("to_thread raised a %s", type(r)) end
      if tostring(r):find("attempt to", 1, true) then fail("raw error: %s", tostring(r)) end
      return
    end
    if not ok then fail("to_thread failed: %s", tostring(r)) end
    if r.n ~= n then fail("%d values came back, %d went", r.n, n) end
    for i = 1, n do
      if not same(args[i], r[i], {}) then fail("argument %d came back different", i) end
    end
  end)
end
