-- Fuzz target: the stream reader.  The input picks a payload, a random
-- chunking and a list of reads (readline, readuntil, readexactly, read(n),
-- read()).  A server sends the payload in those chunks over a unix socket
-- (loopback TCP runs out of ports, in TIME_WAIT); the client does the reads, and each result is checked against a plain
-- reference over the whole payload.  Any mismatch is an error (a finding).
local aio = require "luaio"

local SEPS = { "\n", "a", "ab", "\r\n" }

local function fail(fmt, ...) error(fmt:format(...), 0) end

-- The reference: what op returns given the unread rest; returns
-- kind ("ok"/"incomplete"/"nil"), value, new rest.  read(n) is checked
-- separately (its size depends on chunking).
local function reference(kind, arg, rest)
  if kind == "readline" then
    if rest == "" then return "nil", nil, rest end
    local e = rest:find("\n", 1, true) or #rest
    return "ok", rest:sub(1, e), rest:sub(e + 1)
  elseif kind == "readuntil" then
    local _, e = rest:find(arg, 1, true)
    if not e then return "incomplete", rest, "" end
    return "ok", rest:sub(1, e), rest:sub(e + 1)
  elseif kind == "readexactly" then
    if #rest < arg then return "incomplete", rest, "" end
    return "ok", rest:sub(1, arg), rest:sub(arg + 1)
  elseif kind == "readall" then
    return "ok", rest, ""
  end
end

local function decode(data)
  local b1 = data:byte(1) or 0
  local nops = b1 % 16 + 1
  local ops = {}
  for i = 2, math.min(#data, nops + 1) do
    local o = data:byte(i)
    local k, p = o % 5, o // 5
    if k == 0 then ops[#ops + 1] = { "readline" }
    elseif k == 1 then ops[#ops + 1] = { "readuntil", SEPS[p % 4 + 1] }
    elseif k == 2 then ops[#ops + 1] = { "readexactly", p }
    elseif k == 3 then ops[#ops + 1] = { "read", p + 1 }
    else ops[#ops + 1] = { "readall" } end
  end
  local payload = data:sub(nops + 2)
  -- chunk sizes from a small LCG seeded by the first byte
  local chunks, x, i = {}, b1 * 2654435761 % 2 ^ 32, 1
  while i <= #payload do
    x = (x * 1103515245 + 12345) % 2 ^ 31
    local n = x % 64 + 1
    chunks[#chunks + 1] = payload:sub(i, i + n - 1)
    i = i + n
  end
  return ops, payload, chunks
end

local function one(reader, op, rest)
  local kind, arg = op[1], op[2]
  if kind == "read" then
    local got = reader:read(arg)
    if rest == "" then
      if got ~= nil then fail("read(%d) at EOF gave %q, not nil", arg, got) end
      return rest
    end
    if type(got) ~= "string" or #got < 1 or #got > arg or rest:sub(1, #got) ~= got then
      fail("read(%d) gave %q; the rest begins %q", arg, tostring(got), rest:sub(1, arg))
    end
    return rest:sub(#got + 1)
  end
  local want, value, after = reference(kind, arg, rest)
  local ok, got
  if kind == "readall" then ok, got = pcall(reader.read, reader)
  else ok, got = pcall(reader[kind], reader, arg) end
  if want == "incomplete" then
    if ok or not aio.is(got, aio.IncompleteReadError) then
      fail("%s(%s): wanted IncompleteReadError, got %s %s", kind, tostring(arg), tostring(ok), tostring(got))
    end
    if got.partial ~= value then fail("%s: partial %q, wanted %q", kind, got.partial, value) end
  elseif not ok then
    fail("%s(%s) raised %s", kind, tostring(arg), tostring(got))
  elseif got ~= value then
    fail("%s(%s) gave %d bytes, wanted %d: %q, wanted %q", kind, tostring(arg),
      type(got) == "string" and #got or -1, type(value) == "string" and #value or -1,
      tostring(got), tostring(value))
  end
  return after
end

local PATH = os.tmpname()
os.remove(PATH)

return function(data)
  local ops, payload, chunks = decode(data)
  os.remove(PATH)
  aio.run(function()
    local server = aio.start_unix_server(function(_, writer)
      for _, c in ipairs(chunks) do
        writer:write(c)
        writer:drain()
        aio.sleep(0)
      end
      writer:close()
    end, PATH)
    local reader, writer = aio.open_unix_connection(PATH)
    local rest = payload
    for _, op in ipairs(ops) do rest = one(reader, op, rest) end
    local tail = reader:read()
    if tail ~= rest then fail("the data left was %q, wanted %q", tail, rest) end
    if reader:read(1) ~= nil then fail("read(1) after EOF was not nil") end
    writer:close()
    server:close()
    server:wait_closed()
  end)
  os.remove(PATH)
end
