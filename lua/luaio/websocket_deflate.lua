-- luaio.websocket_deflate: permessage-deflate (RFC 7692) for
-- aio.websocket -- the negotiation (Sec-WebSocket-Extensions) and the
-- per-connection codec, on zlib (Debian's lua-zlib; without it nothing is
-- offered or accepted).
--
-- A message is compressed whole (raw deflate, a sync flush, its final
-- 00 00 ff ff taken off) and inflated back in 16 KiB pieces of input, the
-- output counted against max_size as it grows (a small message may
-- inflate to a huge one).  The contexts are kept between messages unless
-- the negotiation says *_no_context_takeover.  zlib cannot deflate with
-- a window of 2^8: an offer that asks for one is declined.
local M = {}

local has_zlib, zlib = pcall(require, "zlib")
M.available = has_zlib

local concat = table.concat
local TAIL = "\0\0\255\255"
local PIECE = 16384

------------------------------------------------------------------ codec
local Codec = {}
Codec.__index = Codec

-- own_bits: our deflate's window; own_reset: no context takeover for ours.
local function codec(own_bits, own_reset)
  return setmetatable({ bits = own_bits, reset = own_reset }, Codec)
end

--- codec:compress(data) -> the payload of a compressed message
function Codec:compress(data)
  if self.def == nil or self.reset then self.def = zlib.deflate(6, -self.bits) end
  local out = self.def(data, "sync")
  if out:sub(-4) == TAIL then out = out:sub(1, -5) end
  -- nothing new to flush (an empty message): one empty stored block's
  -- first byte, which the tail completes (RFC 7692 7.2.3.6)
  if out == "" then out = "\0" end
  return out
end

--- codec:decompress(payload, max) -> data, or nil, code, reason
function Codec:decompress(payload, max)
  if self.inf == nil then self.inf = zlib.inflate(-15) end
  payload = payload .. TAIL
  local parts, n = {}, 0
  for i = 1, #payload, PIECE do
    local ok, out = pcall(self.inf, payload:sub(i, i + PIECE - 1))
    if not ok then
      self.inf = nil
      return nil, 1007, "invalid compressed data"
    end
    n = n + #out
    if n > max then return nil, 1009, ("message larger than max_size (%d bytes)"):format(max) end
    parts[#parts + 1] = out
  end
  return concat(parts)
end

------------------------------------------------------------------ negotiation
-- The offers in a Sec-WebSocket-Extensions value: a list of {name,
-- params = {key = value | true}}.
local function parse(value)
  local out = {}
  for item in (value or ""):gmatch("[^,]+") do
    local name, rest = item:match("^%s*([%w%-_]+)%s*(.*)$")
    if name then
      local e = { name = name:lower(), params = {} }
      for p in rest:gmatch(";%s*([^;]+)") do
        local k, v = p:match("^([%w_]+)%s*=%s*\"?([%w]*)\"?%s*$")
        if k then e.params[k:lower()] = v
        else
          k = p:match("^([%w_]+)%s*$")
          if k then e.params[k:lower()] = true else e.bad = true end
        end
      end
      out[#out + 1] = e
    end
  end
  return out
end

local function bits(v)
  local n = tonumber(v)
  if n and math.type(n) == "integer" and n >= 8 and n <= 15 then return n end
  return nil
end

local KNOWN = { server_no_context_takeover = true, client_no_context_takeover = true,
  server_max_window_bits = true, client_max_window_bits = true }

--- server(header) -> the response's extension value and a codec, or nil
--- (no acceptable offer)
function M.server(header)
  if not has_zlib or not header then return nil end
  for _, e in ipairs(parse(header)) do
    local p, ok = e.params, e.name == "permessage-deflate" and not e.bad
    for k in pairs(p) do ok = ok and KNOWN[k] end
    local sbits = 15
    if ok and p.server_max_window_bits ~= nil then
      sbits = bits(p.server_max_window_bits)
      ok = sbits ~= nil and sbits > 8
    end
    if ok and p.client_max_window_bits ~= nil and p.client_max_window_bits ~= true then
      ok = bits(p.client_max_window_bits) ~= nil
    end
    if ok then
      local answer = { "permessage-deflate" }
      if p.server_no_context_takeover then answer[#answer + 1] = "server_no_context_takeover" end
      if p.server_max_window_bits then answer[#answer + 1] = "server_max_window_bits=" .. sbits end
      return concat(answer, "; "), codec(sbits, p.server_no_context_takeover == true)
    end
  end
  return nil
end

--- client offer: the request's extension value, or nil without zlib
function M.offer()
  if not has_zlib then return nil end
  return "permessage-deflate; client_max_window_bits"
end

--- client(header) -> a codec, or nil, why (the server's answer is not one
--- we offered)
function M.client(header)
  local list = parse(header)
  local e = list[1]
  if #list ~= 1 or e.bad or e.name ~= "permessage-deflate" then
    return nil, "the server chose an extension not offered: " .. header
  end
  local p = e.params
  for k in pairs(p) do
    if not KNOWN[k] then return nil, "unknown permessage-deflate parameter " .. k end
  end
  local cbits = 15
  if p.client_max_window_bits ~= nil then
    cbits = bits(p.client_max_window_bits)
    if not cbits or cbits == 8 then
      return nil, "unusable client_max_window_bits " .. tostring(p.client_max_window_bits)
    end
  end
  if p.server_max_window_bits ~= nil and not bits(p.server_max_window_bits) then
    return nil, "invalid server_max_window_bits"
  end
  return codec(cbits, p.client_no_context_takeover == true)
end

return M
