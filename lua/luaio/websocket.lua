-- luaio.websocket: aio.websocket -- WebSocket (RFC 6455) connections,
-- client and server, on luaio's streams and HTTP server.
--
--   local ws = req:websocket([opts])            -- in an aio.http handler
--   local ws = aio.websocket.connect(url [, opts])         -- ws://, wss://
--   aio.websocket.serve(handler, host, port [, opts])   -- handler(ws, req)
--   ws:send(text)  ws:send_binary(bytes)  ws:ping([data])
--   local data, kind = ws:receive()      -- kind "text" | "binary"; nil
--   for data, kind in ws:messages() do ... end          -- once closed
--   ws:close([code [, reason]])  ws.close_code  ws.close_reason
--
-- Frames are parsed, unmasked, built and masked in C (core.ws_parse,
-- core.ws_build: runtime/ws_frame.c); the protocol is here, and
-- permessage-deflate (RFC 7692, when both sides offer it) in
-- luaio.websocket_deflate.  There is no
-- task of its own: frames are read by receive (and by close, waiting for
-- the peer's close), which answers pings and reassembles fragments; a
-- connection no one reads from answers no pings.
--
-- Protocol errors close the connection with their code and raise
-- aio.WebSocketError (.code) from receive: 1002 (a frame the protocol
-- forbids: an unknown opcode, reserved bits, a client frame unmasked or a
-- server frame masked, a control frame over 125 bytes or fragmented, a
-- continuation without a start or a start inside a message), 1007 (text
-- or a close reason that is not UTF-8), 1009 (a message over max_size).
-- A connection that ends without a close frame raises one with code 1006.
-- A peer's close ends the messages: receive returns nil, and close_code
-- and close_reason say what the peer sent (1005: no code).
--
-- Cancellation: a frame goes to the writer whole in one write, so a
-- cancelled send (waiting in its drain) leaves the connection usable; a
-- cancelled receive keeps what it had read, and the next receive goes on
-- from there.  A close cancelled while it waits for the peer's answer
-- closes the connection at once.
--
-- Suspension points: connect, receive, messages' iterator, send,
-- send_binary and ping (the writer's drain: backpressure), close.
-- (luaio.streams and luaio.http are reached through aio, not required
-- again: busted's insulation would make second instances of them.)
local aio = require "luaio"
local core = require "luaio.core"
local hh = require "luaio.http_headers"
local deflate = require "luaio.websocket_deflate"

local M = {}

local format, lower, concat = string.format, string.lower, table.concat
local ws_parse, ws_build = core.ws_parse, core.ws_build
local utf8len = core.ws_utf8         -- (a boolean: whether it is UTF-8)
local is = core.is
local CancelledError = core.CancelledError
local WebSocketError = core.WebSocketError
M.WebSocketError = WebSocketError

local CONT, TEXT, BINARY, CLOSE, PING, PONG = 0, 1, 2, 8, 9, 10
local KIND = { [TEXT] = "text", [BINARY] = "binary" }
local READ_SIZE = 65536

local DEFAULTS = {
  max_size = 1024 * 1024,       -- bytes of a message (1009 beyond)
  close_timeout = 5,            -- seconds close waits for the peer's close
  fragment_size = nil,          -- sent messages cut in frames of this size
  timeout = 10,                 -- connect: the handshake's deadline
  compression = "deflate",      -- permessage-deflate when both offer it
}

local function fail(msg, fields)
  error(WebSocketError(msg, fields), 0)
end

------------------------------------------------------------------ WebSocket
local WebSocket = {}
WebSocket.__index = WebSocket
WebSocket.__name = "WebSocket"

local function check_ws(ws, fname)
  if getmetatable(ws) ~= WebSocket then core.bad_self(ws, "WebSocket", fname, 3) end
end

local function new(r, w, buffered, client, o, subprotocol, pmd)
  return setmetatable({
    _pmd = pmd, _inflate = false,             -- (the message is compressed)
    _r = r, _w = w, _buf = buffered or "", _pos = 1, _client = client,
    _max = o.max_size, _close_timeout = o.close_timeout, _frag = o.fragment_size,
    _parts = nil, _kind = nil, _len = 0,      -- the message being reassembled
    state = "open", subprotocol = subprotocol, compression = pmd and "deflate" or nil,
    close_code = nil, close_reason = nil,
  }, WebSocket)
end

-- The end of the transport (nothing more is sent or read); a close
-- waiting for the task that receives is woken.
local function shut(ws)
  ws.state = "closed"
  local w = ws._w
  if not w:is_closing() then pcall(w.close, w) end
  local f = ws._waiter
  if f and not f:done() then f:set_result(true) end
end

-- Writes one frame (or a list of them) whole; the drain after it is the
-- only suspension.
local function put(ws, frames, fname)
  local w = ws._w
  local ok, err
  if type(frames) == "string" then ok, err = pcall(w.write, w, frames)
  else ok, err = pcall(w.writelines, w, frames) end
  if not ok then
    shut(ws)
    fail(format("%s: the connection is lost (%s)", fname, tostring(err)), { code = 1006 })
  end
end

local function drain(ws, fname)
  local ok, err = pcall(ws._w.drain, ws._w)
  if not ok then
    if is(err, CancelledError) then error(err, 0) end
    shut(ws)
    fail(format("%s: the connection is lost (%s)", fname, tostring(err)), { code = 1006 })
  end
end

local function close_payload(code, reason)
  if code == nil then return "" end
  return string.pack(">I2", code) .. (reason or "")
end

-- After our close for a protocol error: our side is shut down and what
-- the peer still sends is dropped, until it closes (or close_timeout, or
-- LINGER_MAX bytes).  Closing at once would make the kernel answer that
-- data with a reset, which can destroy the close frame before the peer
-- has read it.  A cancellation passes through, the connection closed.
local LINGER_MAX = 64 << 20

local function drop_rest(_, r)
  local left = LINGER_MAX
  while left > 0 do
    local data = r:read(READ_SIZE)
    if data == nil then return end
    left = left - #data
  end
end

local function linger(ws)
  local w = ws._w
  if w:can_write_eof() and not w:is_closing() then pcall(w.write_eof, w) end
  local ok, err = pcall(aio.timeout, ws._close_timeout, drop_rest, ws._r)
  if not ok and is(err, CancelledError) then
    shut(ws)
    error(err, 0)
  end
end

-- A protocol error from the peer: our close with code, then the end.
local function violation(ws, code, reason)
  ws.close_code, ws.close_reason = ws.close_code or 1006, ws.close_reason or ""
  if ws.state == "open" then
    ws.state = "closing"
    if pcall(ws._w.write, ws._w, ws_build(CLOSE, true, close_payload(code, ""), ws._client)) then
      linger(ws)
    end
  end
  shut(ws)
  fail(format("receive: %s (%d)", reason, code), { code = code })
end

local function valid_code(c)
  return (c >= 1000 and c <= 1003) or (c >= 1007 and c <= 1014)
    or (c >= 3000 and c <= 4999)
end

-- The peer's close frame: answered (when we did not close first), then
-- the end.
local function peer_closed(ws, payload)
  local code, reason = 1005, ""
  if #payload == 1 then return violation(ws, 1002, "close frame with a 1-byte payload") end
  if #payload >= 2 then
    code = string.unpack(">I2", payload)
    reason = payload:sub(3)
    if not valid_code(code) then return violation(ws, 1002, "invalid close code " .. code) end
    if not utf8len(reason) then return violation(ws, 1007, "close reason is not UTF-8") end
  end
  ws.close_code, ws.close_reason = code, reason
  if ws.state == "open" then
    local echo = code == 1005 and "" or string.pack(">I2", code)
    pcall(ws._w.write, ws._w, ws_build(CLOSE, true, echo, ws._client))
  end
  shut(ws)
end

-- The next frame: opcode, fin, payload, rsv; raises at the end of the
-- connection.  What was read stays in ws._buf across a cancellation.
local function next_frame(ws)
  local r = ws._r
  while true do
    local buf, pos = ws._buf, ws._pos
    local max = ws._max - ws._len
    if max < 125 then max = 125 end
    local op, fin, payload, nxt, rsv = ws_parse(buf, pos, max, not ws._client)
    if op then
      ws._pos = nxt
      return op, fin, payload, rsv
    end
    if op == false then
      if fin == 1009 then payload = format("message larger than max_size (%d bytes)", ws._max) end
      return violation(ws, fin, payload)
    end
    local missing = fin - (#buf - pos + 1)
    local ok, data
    if missing > READ_SIZE then ok, data = pcall(r.readexactly, r, missing)
    else ok, data = pcall(r.read, r, READ_SIZE) end
    if not ok then
      if is(data, CancelledError) then error(data, 0) end
      data = nil
    end
    if data == nil then
      ws.close_code, ws.close_reason = 1006, ""
      shut(ws)
      fail("receive: the connection closed without a close frame (1006)", { code = 1006 })
    end
    if pos > #buf then ws._buf = data else ws._buf = buf:sub(pos) .. data end
    ws._pos = 1
  end
end

-- The next message: data, kind; nil once the connection is closed.
local function next_message(ws)
  while true do
    if ws.state == "closed" then return nil end
    local op, fin, payload, rsv = next_frame(ws)
    if rsv ~= 0 then
      -- RSV1 on the first frame of a compressed message, nowhere else
      if rsv ~= 4 or not ws._pmd or op >= CLOSE or op == CONT then
        return violation(ws, 1002, "reserved bits set")
      end
    end
    if op >= CLOSE then
      if op == PING then
        if ws.state == "open" then put(ws, ws_build(PONG, true, payload, ws._client), "receive") end
      elseif op == CLOSE then
        peer_closed(ws, payload)
        return nil
      end                                         -- (a pong: nothing to do)
    else
      local parts = ws._parts
      if op == CONT then
        if not parts then return violation(ws, 1002, "continuation frame without a message") end
      elseif parts then
        return violation(ws, 1002, "new message inside a fragmented one")
      end
      local len = ws._len + #payload
      if len > ws._max then
        return violation(ws, 1009, format("message larger than max_size (%d bytes)", ws._max))
      end
      if op ~= CONT then ws._inflate = rsv == 4 end
      if fin and ws._inflate then                -- (the whole message: inflated)
        local data, kind = payload, op
        if parts then
          parts[#parts + 1] = payload
          data, kind = concat(parts), ws._kind
          ws._parts, ws._kind, ws._len = nil, nil, 0
        end
        local out, code, why = ws._pmd:decompress(data, ws._max)
        if not out then return violation(ws, code, why) end
        if kind == TEXT and not utf8len(out) then
          return violation(ws, 1007, "text message is not UTF-8")
        end
        return out, KIND[kind]
      end
      if fin and not parts then
        if op == TEXT and not utf8len(payload) then
          return violation(ws, 1007, "text message is not UTF-8")
        end
        return payload, KIND[op]
      end
      if not parts then
        parts = {}
        ws._parts, ws._kind = parts, op
      end
      parts[#parts + 1] = payload
      ws._len = len
      if fin then
        local data, kind = concat(parts), ws._kind
        ws._parts, ws._kind, ws._len = nil, nil, 0
        if kind == TEXT and not utf8len(data) then
          return violation(ws, 1007, "text message is not UTF-8")
        end
        return data, KIND[kind]
      end
    end
  end
end

local function reading(ws, fname)
  if ws._reading then error(fname .. ": another task is already receiving", 3) end
end

--- ws:receive() -> data, kind ("text" | "binary"), or nil once the
--- connection is closed (close_code, close_reason say how).  Suspends.
function WebSocket:receive()
  check_ws(self, "receive")
  reading(self, "receive")
  self._reading = true
  local ok, data, kind = pcall(next_message, self)
  self._reading = false
  if not ok then error(data, 0) end
  return data, kind
end

--- for data, kind in ws:messages() do ... end -- until the connection is
--- closed.  Suspends.
function WebSocket:messages()
  check_ws(self, "messages")
  return function() return self:receive() end
end

local function check_data(data, fname)
  if type(data) ~= "string" then
    error(format("bad argument #1 to '%s' (string expected, got %s)", fname, type(data)), 3)
  end
end

local function send(ws, op, data, fname)
  if ws.state ~= "open" then error(fname .. ": the connection is closed", 3) end
  local frag, client, rsv = ws._frag, ws._client, 0
  if ws._pmd and op ~= PING then data, rsv = ws._pmd:compress(data), 4 end
  if frag == nil or #data <= frag then
    put(ws, ws_build(op, true, data, client, rsv), fname)
  else
    local frames, i, n = {}, 1, #data
    while i <= n do
      local j = i + frag
      frames[#frames + 1] = ws_build(i == 1 and op or CONT, j > n, data:sub(i, j - 1), client,
        i == 1 and rsv or 0)
      i = j
    end
    put(ws, frames, fname)
  end
  drain(ws, fname)
end

--- ws:send(text): a text message (text must be UTF-8).  Suspends while
--- the writer is over its high-water mark.
function WebSocket:send(text)
  check_ws(self, "send")
  check_data(text, "send")
  if not utf8len(text) then error("bad argument #1 to 'send' (text is not UTF-8)", 2) end
  send(self, TEXT, text, "send")
end

--- ws:send_binary(bytes): a binary message.  Suspends as send.
function WebSocket:send_binary(bytes)
  check_ws(self, "send_binary")
  check_data(bytes, "send_binary")
  send(self, BINARY, bytes, "send_binary")
end

--- ws:ping([data]): a ping (data: up to 125 bytes); receive answers the
--- peer's pings and takes its pongs.
function WebSocket:ping(data)
  check_ws(self, "ping")
  data = data or ""
  check_data(data, "ping")
  if #data > 125 then error("bad argument #1 to 'ping' (more than 125 bytes)", 2) end
  send(self, PING, data, "ping")
end

-- close's wait for the peer's close frame (reading it, or waiting for the
-- task that is receiving to read it).
local function await_close(_, ws)
  if ws._reading then
    ws._waiter = aio.Future()
    ws._waiter:await()
    return
  end
  ws._reading = true
  while ws.state ~= "closed" do next_message(ws) end
end

--- ws:close([code [, reason]]): sends a close frame (code 1000 by
--- default; reason up to 123 bytes of UTF-8) and waits up to
--- close_timeout seconds for the peer's; then closes the connection.
--- Messages that come meanwhile are dropped.  Suspends.
function WebSocket:close(code, reason)
  check_ws(self, "close")
  if code ~= nil and (math.type(code) ~= "integer" or not valid_code(code) or code == 1010 and not self._client) then
    error(format("bad argument #1 to 'close' (close code expected, got %s)", tostring(code)), 2)
  end
  if reason ~= nil then
    check_data(reason, "close")
    if #reason > 123 or not utf8len(reason) then
      error("bad argument #2 to 'close' (reason: up to 123 bytes of UTF-8)", 2)
    end
  end
  if self.state ~= "open" then return end
  self.state = "closing"
  local ok, err = pcall(self._w.write, self._w,
    ws_build(CLOSE, true, close_payload(code or 1000, reason), self._client))
  if ok then
    ok, err = pcall(aio.timeout, self._close_timeout, await_close, self)
    self._reading = false
  end
  if self.close_code == nil then self.close_code, self.close_reason = 1006, "" end
  if not ok then self._w:_abort() end   -- no answer: what is queued goes too
  shut(self)
  if not ok and is(err, CancelledError) then error(err, 0) end
end

--- ws:is_closed() -> true once the connection is closed
function WebSocket:is_closed()
  check_ws(self, "is_closed")
  return self.state == "closed"
end

--- ws:get_extra_info(name [, default]): the writer's ("peername", ...)
function WebSocket:get_extra_info(name, default)
  check_ws(self, "get_extra_info")
  return self._w:get_extra_info(name, default)
end

function WebSocket:__tostring()
  return format("WebSocket(%s, %s)", self._client and "client" or "server", self.state)
end
WebSocket.__close = function(ws) if ws.state == "open" then ws:close() end end

------------------------------------------------------------------ options
local OPTION_KINDS = {
  max_size = "integer", close_timeout = "number", fragment_size = "integer",
  timeout = "number", protocols = "table", headers = "table", origin = "any",
  ssl = "any", compression = "any",
}

local function options(opts, fname, n)
  if opts ~= nil and type(opts) ~= "table" then
    error(format("bad argument #%d to '%s' (options table expected, got %s)", n, fname, type(opts)), 3)
  end
  core.check_options(opts, fname, OPTION_KINDS, 3)
  local o = {}
  for k, v in pairs(DEFAULTS) do o[k] = v end
  for k, v in pairs(opts or {}) do
    local kind = OPTION_KINDS[k]
    if kind == "integer" and (math.type(v) ~= "integer" or v <= 0) then
      error(format("%s: option '%s' must be a positive integer", fname, k), 3)
    elseif kind == "number" and (type(v) ~= "number" or v ~= v or v <= 0) then
      error(format("%s: option '%s' must be a positive number of seconds", fname, k), 3)
    elseif kind == "table" and type(v) ~= "table" then
      error(format("%s: option '%s' must be a table", fname, k), 3)
    elseif k == "compression" and v ~= false and v ~= "deflate" then
      error(format("%s: option 'compression' must be \"deflate\" or false", fname), 3)
    end
    o[k] = v
  end
  return o
end

-- Whether a comma-separated header value holds token (any case).
local function has_token(value, token)
  if not value then return false end
  for t in value:gmatch("[^,%s]+") do
    if lower(t) == token then return true end
  end
  return false
end

------------------------------------------------------------------ server
local function refuse(w, status, reason, extra)
  pcall(w.write, w, format("HTTP/1.1 %d %s\r\n%sContent-Length: 0\r\nConnection: close\r\n\r\n",
    status, reason, extra or ""))
  pcall(w.close, w)
end

--- M.accept(req, opts) -- req:websocket(opts): the handshake's answer,
--- then the connection is the WebSocket's.
function M.accept(req, opts)
  local o = options(opts, "websocket", 1)
  local h = req.headers
  local ws
  local r, w, rest = req:_takeover("websocket", function()
    -- the server is closing: 1001, going away (the peer's answer ends
    -- the handler's receive)
    if ws and ws.state == "open" then
      ws.state = "closing"
      pcall(ws._w.write, ws._w, ws_build(CLOSE, true, close_payload(1001, "server shutdown"), false))
    end
  end)
  local key = h:get("sec-websocket-key")
  local why
  if req.method ~= "GET" then why = "method " .. req.method
  elseif not has_token(h:get("upgrade"), "websocket") then why = "no 'Upgrade: websocket'"
  elseif not has_token(h:get("connection"), "upgrade") then why = "no 'Connection: Upgrade'"
  elseif not key or not key:match("^[%w+/]+=*$") or #key ~= 24 then why = "no valid Sec-WebSocket-Key"
  end
  if why then
    refuse(w, 400, "Bad Request")
    fail("websocket: not a WebSocket handshake (" .. why .. ")", { status = 400 })
  end
  if h:get("sec-websocket-version") ~= "13" then
    refuse(w, 426, "Upgrade Required", "Sec-WebSocket-Version: 13\r\n")
    fail("websocket: unsupported Sec-WebSocket-Version", { status = 426 })
  end
  if o.origin ~= nil and not o.origin(h:get("origin"), req) then
    refuse(w, 403, "Forbidden")
    fail("websocket: origin refused (" .. tostring(h:get("origin")) .. ")", { status = 403 })
  end
  local chosen
  if o.protocols then
    local offered = {}
    for p in (h:get("sec-websocket-protocol") or ""):gmatch("[^,%s]+") do offered[p] = true end
    for _, p in ipairs(o.protocols) do
      if offered[p] then chosen = p; break end
    end
  end
  local head = { "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n",
    "Connection: Upgrade\r\nSec-WebSocket-Accept: ", core.ws_accept(key), "\r\n" }
  if chosen then head[#head + 1] = "Sec-WebSocket-Protocol: " .. chosen .. "\r\n" end
  local ext, pmd
  if o.compression then ext, pmd = deflate.server(h:get("sec-websocket-extensions")) end
  if ext then head[#head + 1] = "Sec-WebSocket-Extensions: " .. ext .. "\r\n" end
  head[#head + 1] = "\r\n"
  w:write(concat(head))
  ws = new(r, w, rest, false, o, chosen, pmd)
  return ws
end

--- aio.websocket.serve(handler, host, port [, opts]) -> an aio.http
--- server whose WebSocket requests run handler(ws, req); others get 426.
--- opts: aio.http.serve's, and the WebSocket's (max_size, protocols, ...).
function M.serve(handler, host, port, opts)
  local wopts, hopts = {}, {}
  for k, v in pairs(opts or {}) do
    if OPTION_KINDS[k] and k ~= "ssl" then wopts[k] = v else hopts[k] = v end
  end
  return aio.http.serve(function(req)
    if not has_token(req.headers:get("upgrade"), "websocket") then
      return 426, { ["Sec-WebSocket-Version"] = "13" }, "a WebSocket endpoint\n"
    end
    local ws <close> = req:websocket(wopts)
    handler(ws, req)
  end, host, port, hopts)
end

------------------------------------------------------------------ client
local function read_answer(r, p)
  while true do
    local data = r:read(READ_SIZE)
    if data == nil then fail("connect: the server closed the connection during the handshake") end
    local ev, pos, x = p:execute(data)
    if ev == "head" then
      if x.status == 101 then return x, data:sub(pos) end
      return x, ""
    elseif ev == "error" then
      fail("connect: invalid handshake answer (" .. tostring(x) .. ")")
    elseif ev ~= "more" then
      fail("connect: unexpected handshake answer")
    end
  end
end

local function handshake(_, u, o)          -- (the first: aio.timeout's scope)
  local ctx = u.scheme == "wss" and (o.ssl or true) or nil
  if ctx == true then ctx = aio.ssl.create_default_context() end
  local r, w = aio.open_connection(u.host, u.port, ctx and { ssl = ctx } or nil)
  local ok, ws = pcall(function()
    local key = core.ws_key()
    local host = u.host:find(":", 1, true) and "[" .. u.host .. "]" or u.host
    if u.port ~= hh.DEFAULT_PORT[u.scheme] then host = host .. ":" .. u.port end
    local head = { "GET ", u.target, " HTTP/1.1\r\nHost: ", host,
      "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ", key,
      "\r\nSec-WebSocket-Version: 13\r\n" }
    if o.protocols then
      head[#head + 1] = "Sec-WebSocket-Protocol: " .. concat(o.protocols, ", ") .. "\r\n"
    end
    if o.origin then head[#head + 1] = "Origin: " .. o.origin .. "\r\n" end
    local offer = o.compression and deflate.offer()
    if offer then head[#head + 1] = "Sec-WebSocket-Extensions: " .. offer .. "\r\n" end
    for k, v in pairs(o.headers or {}) do
      if type(k) ~= "string" or type(v) ~= "string" or (k .. v):find("[\r\n%z]") then
        error("connect: option 'headers' must map names to values (strings without CR, LF, NUL)", 0)
      end
      head[#head + 1] = k .. ": " .. v .. "\r\n"
    end
    head[#head + 1] = "\r\n"
    w:write(concat(head))
    local p = core.http_parser("response")
    local ans, rest = read_answer(r, p)
    local ah = hh.new(ans.headers)
    if ans.status ~= 101 then
      fail(format("connect: the server answered %d %s", ans.status, ans.reason), { status = ans.status })
    end
    if not has_token(ah:get("upgrade"), "websocket") or not has_token(ah:get("connection"), "upgrade") then
      fail("connect: the server's 101 lacks 'Upgrade: websocket'")
    end
    if ah:get("sec-websocket-accept") ~= core.ws_accept(key) then
      fail("connect: wrong Sec-WebSocket-Accept")
    end
    local proto = ah:get("sec-websocket-protocol")
    if proto then
      local offered = false
      for _, q in ipairs(o.protocols or {}) do offered = offered or q == proto end
      if not offered then fail("connect: the server chose a subprotocol not offered: " .. proto) end
    end
    local ext, pmd = ah:get("sec-websocket-extensions"), nil
    if ext then
      if not offer then fail("connect: the server chose an extension not offered: " .. ext) end
      local why
      pmd, why = deflate.client(ext)
      if not pmd then fail("connect: " .. why) end
    end
    return new(r, w, rest, true, o, proto, pmd)
  end)
  if not ok then
    w:_abort()
    error(ws, 0)
  end
  return ws
end

--- aio.websocket.connect(url [, opts]) -> ws.  opts: headers (name ->
--- value), protocols (a list, offered in order: ws.subprotocol is the
--- server's choice), origin, ssl (an SSLContext for wss://), timeout (the
--- handshake's deadline, 10 s), max_size, close_timeout, fragment_size.
--- Suspends.
function M.connect(url, opts)
  if type(url) ~= "string" then
    error("bad argument #1 to 'connect' (string expected, got " .. type(url) .. ")", 2)
  end
  local o = options(opts, "connect", 2)
  local u, err = hh.parse_url(url)
  if not u then error("connect: invalid URL '" .. url .. "' (" .. err .. ")", 2) end
  if u.scheme ~= "ws" and u.scheme ~= "wss" then
    error("connect: the URL's scheme must be ws or wss, got '" .. u.scheme .. "'", 2)
  end
  return aio.timeout(o.timeout, handshake, u, o)
end

M.WebSocket = WebSocket
return M
