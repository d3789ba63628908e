-- Fuzz target: core.ws_parse and core.ws_build (runtime/ws_frame.c), the
-- WebSocket frame parser/unmasker and builder.  The input is a flags byte
-- (bit 1: frames must be masked; the rest, times 64: max), then frame
-- bytes.  The frames are parsed one after another from a start position
-- and compared with a plain Lua reference parser: the same frames, the
-- same need when one is cut short, the same error code and reason.  Every
-- prefix of a complete frame must give nil and that frame's length (or
-- the least head length).  Each frame parsed is built again with
-- ws_build (masked as it came) and must parse back to the same frame.
-- The bytes are also checked as UTF-8 by core.ws_utf8 and utf8.len.
-- Any Lua error is a finding.
local aio = require "luaio"

local core = aio.core
local parse, build = core.ws_parse, core.ws_build

local function fail(fmt, ...) error(fmt:format(...), 0) end

-- The reference: the same results as core.ws_parse, in plain Lua.
local function ref(s, pos, max, want_mask)
  local avail = #s - pos + 1
  if avail < 2 then return nil, 2 end
  local b0, b1 = s:byte(pos, pos + 1)
  local fin, rsv, op = b0 >= 128, (b0 >> 4) & 7, b0 & 15
  local masked, len = b1 >= 128, b1 & 127
  if not (op <= 2 or (op >= 8 and op <= 10)) then return false, 1002, "unknown opcode" end
  if op >= 8 then
    if not fin then return false, 1002, "fragmented control frame" end
    if len > 125 then return false, 1002, "control frame over 125 bytes" end
  end
  if masked ~= want_mask then
    return false, 1002, masked and "masked frame from a server" or "unmasked frame from a client"
  end
  local hlen = 2 + (len == 126 and 2 or len == 127 and 8 or 0) + (masked and 4 or 0)
  if avail < hlen then return nil, hlen end
  if len == 126 then
    len = string.unpack(">I2", s, pos + 2)
  elseif len == 127 then
    if s:byte(pos + 2) >= 128 then return false, 1002, "frame length with its top bit set" end
    len = string.unpack(">i8", s, pos + 2)
  end
  if len > max then return false, 1009, "message too big" end
  if avail - hlen < len then return nil, hlen + len end
  local payload = s:sub(pos + hlen, pos + hlen + len - 1)
  if masked then
    local key = { s:byte(pos + hlen - 4, pos + hlen - 1) }
    local out = {}
    for i = 1, #payload do
      out[i] = string.char(payload:byte(i) ~ key[(i - 1) % 4 + 1])
    end
    payload = table.concat(out)
  end
  return op, fin, payload, pos + hlen + len, rsv
end

local function same(a, b)
  if a.n ~= b.n then return false end
  for i = 1, a.n do if a[i] ~= b[i] then return false end end
  return true
end

local function show(t)
  local out = {}
  for i = 1, t.n do out[i] = ("%q"):format(t[i]) end
  return table.concat(out, ", ")
end

return function(data)
  if #data < 2 then return end
  local flags = data:byte(1)
  local want_mask = flags & 1 == 1
  local max = (flags >> 1) * 64
  local s = "\0" .. data:sub(2)
  local pos = 2
  while true do
    local got = table.pack(parse(s, pos, max, want_mask))
    local want = table.pack(ref(s, pos, max, want_mask))
    if not same(got, want) then fail("at %d: C gave %s, reference %s", pos, show(got), show(want)) end
    if not got[1] then break end
    local op, fin, payload, nxt, rsv = table.unpack(got, 1, 5)
    -- every cut of the frame: not yet, and the right need
    for cut = pos, nxt - 2, math.max(1, (nxt - pos) // 7) do
      local part = s:sub(1, cut)
      local g = table.pack(parse(part, pos, max, want_mask))
      local w = table.pack(ref(part, pos, max, want_mask))
      if g[1] ~= nil or not same(g, w) then
        fail("frame cut at %d: C gave %s, reference %s", cut, show(g), show(w))
      end
    end
    -- built again, parsed back
    local again = build(op, fin, payload, want_mask, rsv)
    local back = table.pack(parse(again, 1, max, want_mask))
    if back[1] ~= op or back[2] ~= fin or back[3] ~= payload or back[4] ~= #again + 1
        or back[5] ~= rsv then
      fail("rebuilt frame parsed as %s", show(back))
    end
    pos = nxt
  end
  -- the UTF-8 check against Lua's utf8.len (strict: no surrogates)
  local body = data:sub(2)
  if core.ws_utf8(body) ~= (utf8.len(body) ~= nil) then
    fail("ws_utf8 gave %s, utf8.len %s", tostring(core.ws_utf8(body)), tostring(utf8.len(body)))
  end
end
