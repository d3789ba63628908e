-- Fuzz target: core.http_parser.  The input is a kind byte (request or
-- response, skip_body, small limits, finish at the end), a split pattern
-- (four piece sizes, cycled), three bytes of limits and the message
-- bytes.  The bytes go whole into one parser (after two bytes of junk
-- that init skips) and in the split pieces into another; both must give
-- the same events: heads, each message's body bytes, done, upgrade with
-- the bytes after the head, error codes (which stay: the next execute and
-- finish give them again).  Our own limits are checked at the end of each
-- call, so a limit error may come where the other parser meets another
-- error in the same message: then both must end in an error, after the
-- same events.  With flag 16 the whole parser runs with done_with_head
-- (a request without a body ends with its head) and the split one
-- without: a fused head must equal a head and its done.  Any Lua error
-- is a finding.
local aio = require "luaio"

local core = aio.core

local function fail(fmt, ...) error(fmt:format(...), 0) end

local LIMIT_CODES = { HEAD_TOO_LARGE = true, URI_TOO_LONG = true, TOO_MANY_HEADERS = true }

-- A head as a string, every field in a fixed order, checked on the way.
local function show_head(h, kind)
  if type(h) ~= "table" then fail("head is a %s", type(h)) end
  local out = {}
  if kind == "request" then
    if type(h.method) ~= "string" or type(h.target) ~= "string" then fail("bad request line") end
    out[#out + 1] = h.method .. " " .. h.target
  else
    if math.type(h.status) ~= "integer" or type(h.reason) ~= "string" then fail("bad status line") end
    out[#out + 1] = h.status .. " " .. h.reason
  end
  if type(h.version) ~= "string" or not h.version:match("^%d%.%d$") then
    fail("bad version %s", tostring(h.version))
  end
  local cl = h.content_length
  if cl ~= nil and (math.type(cl) ~= "integer" or cl < 0) then
    fail("bad content_length %s", tostring(cl))
  end
  out[#out + 1] = ("%s ka=%s up=%s ch=%s cl=%s"):format(h.version, tostring(h.keep_alive),
    tostring(h.upgrade), tostring(h.chunked), tostring(cl))
  local hs = h.headers
  if #hs % 2 ~= 0 then fail("odd header list") end
  for i = 1, #hs do
    if type(hs[i]) ~= "string" then fail("header %d is a %s", i, type(hs[i])) end
    out[#out + 1] = ("%q"):format(hs[i])
  end
  return table.concat(out, "\n")
end

-- Runs a parser over pieces (each {data, init}); -> the normalised events
-- (strings): "head ...", "body ...", "done", "upgrade ...", "error CODE".
-- A message's body is one event before its done; the body of a message
-- that fails is not shown (an error carries no body bytes).
local function run(kind, pieces, limits, skip, finish)
  local p = core.http_parser(kind, limits)
  if skip then p:skip_body() end
  local out, body = {}, {}
  local function flush()
    local b = table.concat(body)
    body = {}
    if b ~= "" then out[#out + 1] = "body " .. b end
  end
  local function failed(code)
    -- the error stays
    local ev, pos, code2 = p:execute("GET / HTTP/1.1\r\n\r\n")
    if ev ~= "error" or code2 ~= code or pos ~= 1 then
      fail("after %s, execute gave %s %s", code, tostring(ev), tostring(code2))
    end
    local ev3, _, code3 = p:finish()
    if ev3 ~= "error" or code3 ~= code then
      fail("after %s, finish gave %s %s", code, tostring(ev3), tostring(code3))
    end
    body = {}
    out[#out + 1] = "error " .. code
    return out
  end
  for i, piece in ipairs(pieces) do
    local data, pos = piece[1], piece[2]
    while true do
      local ev, at, x, reason = p:execute(data, pos)
      local ended = ev == "head" and reason
      if ev == "error" then
        if type(x) ~= "string" or type(reason) ~= "string" then fail("error without code or reason") end
        if at ~= nil and (math.type(at) ~= "integer" or at < pos or at > #data + 1) then
          fail("error position %s out of %d..%d", tostring(at), pos, #data + 1)
        end
        return failed(x)
      end
      if math.type(at) ~= "integer" or at < pos or at > #data + 1 then
        fail("%s at %s, out of %d..%d", tostring(ev), tostring(at), pos, #data + 1)
      end
      if ev == "head" then
        flush()
        out[#out + 1] = "head " .. show_head(x, kind)
        if ended then
          if ended ~= true or kind ~= "request" then fail("head with %s", tostring(ended)) end
          out[#out + 1] = "done"
        end
      elseif ev == "done" then
        body[#body + 1] = x
        flush()
        out[#out + 1] = "done"
      elseif ev == "more" then
        if at ~= #data + 1 then fail("more at %d of %d", at, #data) end
        body[#body + 1] = x
        break
      elseif ev == "upgrade" then
        flush()
        local rest = { data:sub(at) }
        for j = i + 1, #pieces do rest[#rest + 1] = pieces[j][1]:sub(pieces[j][2]) end
        out[#out + 1] = "upgrade " .. table.concat(rest)
        -- and it stays
        if p:execute("x", 1) ~= "upgrade" then fail("upgrade did not stay") end
        return out
      else
        fail("unknown event %s", tostring(ev))
      end
      pos = at
    end
  end
  if finish then
    local ev, x, code = p:finish()
    if ev == "done" then
      body[#body + 1] = x
      flush()
      out[#out + 1] = "done"
    elseif ev == "error" then
      return failed(code)
    elseif ev ~= nil then
      fail("finish gave %s", tostring(ev))
    end
  end
  flush()
  return out
end

return function(data)
  if #data < 8 then return end
  local flags = data:byte(1)
  local kind = flags & 1 == 0 and "request" or "response"
  local skip = flags & 2 ~= 0 and kind == "response"
  local limits
  if flags & 4 ~= 0 then
    limits = { max_head = data:byte(6) * 4 + 16, max_uri = data:byte(7) % 128 + 1,
               max_headers = data:byte(8) % 32 + 1 }
  end
  local finish = flags & 8 ~= 0
  local sizes = {}
  for i = 2, 5 do sizes[#sizes + 1] = data:byte(i) % 64 + 1 end
  local msg = data:sub(9)

  local fused = limits or {}
  if flags & 16 ~= 0 then
    fused = { done_with_head = true }
    for key, v in pairs(limits or {}) do fused[key] = v end
  end
  local whole = run(kind, { { "\0\0" .. msg, 3 } }, fused, skip, finish)
  local pieces, i, k = {}, 1, 0
  while i <= #msg do
    k = k % #sizes + 1
    pieces[#pieces + 1] = { msg:sub(i, i + sizes[k] - 1), 1 }
    i = i + sizes[k]
  end
  local split = run(kind, pieces, limits, skip, finish)

  local n = math.max(#whole, #split)
  for j = 1, n do
    local a, b = whole[j], split[j]
    if a ~= b then
      -- only a limit error against another error, as the last events
      local ca, cb = a and a:match("^error (.*)$"), b and b:match("^error (.*)$")
      if not (ca and cb and j == #whole and j == #split and (LIMIT_CODES[ca] or LIMIT_CODES[cb])) then
        fail("event %d: whole %q, split %q (sizes %s)", j, tostring(a), tostring(b),
          table.concat(sizes, ","))
      end
    end
  end
end
