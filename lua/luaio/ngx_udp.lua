-- luaio.ngx_udp: ngx.socket.udp(), OpenResty's UDP cosocket, on
-- aio.open_udp (reached through the `aio` table only).
--
--   local sock = ngx.socket.udp()
--   sock:settimeout(ms)                   -- 0: the default, 60 s
--   sock:setpeername(host, port)          -- 1 | nil, err (suspends to resolve)
--   sock:send(data)                       -- 1 | nil, err (strings, numbers,
--                                         --   arrays of them)
--   sock:receive([size])                  -- datagram | nil, err (suspends)
--   sock:close()                          -- 1 | nil, "closed"
--
-- The values and error strings are OpenResty's: "closed" before
-- setpeername and after close, "timeout" (the socket stays usable),
-- "socket busy" when another task is already receiving on it, "<host>
-- could not be resolved (3: Host not found)".  setpeername binds the
-- socket to the wildcard address of the peer's family (port 0), and
-- receive keeps only the peer's datagrams (the others are dropped, as
-- the system does for a connected socket); the system's ICMP errors
-- ("connection refused") are not reported: an unanswered query times
-- out.  Unix datagram peers ("unix:/path") are not supported.  A task
-- cancelled in receive gets CancelledError; the socket stays usable and
-- no datagram is lost.
local aio = require "luaio"
local tcp = require "luaio.ngx_tcp"

local intask, tostr = tcp._intask, tcp._tostr   -- (as ngx.socket.tcp's)
local oserror = tcp._os_words   -- an aio.OSError in OpenResty's words

local M = {}

local DEFAULT_TIMEOUT = 60000      -- lua_socket_read_timeout
local MAX_DATAGRAM = 65536         -- OpenResty's UDP_MAX_DATAGRAM_SIZE

local Sock = {}
Sock.__index = Sock
Sock.__name = "ngx.socket.udp"
M.Sock = Sock

------------------------------------------------------------------ helpers
local function checkself(self, fname)
  if getmetatable(self) ~= Sock then
    error(("bad argument #1 to '%s' (ngx.socket.udp object expected, got %s)")
      :format(fname, self == nil and "no value" or type(self)), 3)
  end
end

local function is_ip(host)
  return host:match("^%d+%.%d+%.%d+%.%d+$") or host:find(":", 1, true)
end

------------------------------------------------------------------ methods
--- sock:settimeout(ms): the read timeout (0: the default, 60 s)
function Sock:settimeout(ms)
  checkself(self, "settimeout")
  local t = math.floor(tonumber(ms) or 0)
  if t < 0 or t >= 2^31 then error("bad timeout value", 2) end
  self._rt = t
end

--- sock:close() -> 1 | nil, "closed"
function Sock:close()
  checkself(self, "close")
  local u = self._u
  if u == nil then return nil, "closed" end
  self._u, self._peer = nil, nil
  u:close()
  return 1
end

--- sock:setpeername(host, port) -> 1 | nil, err  (suspends to resolve a
--- name; a socket already connected is closed first)
function Sock:setpeername(...)
  checkself(self, "setpeername")
  local n = select("#", ...) + 1
  if n ~= 2 and n ~= 3 then
    error(("ngx.socket.udp setpeername: expecting 2 or 3 arguments (including the object), but seen %d")
      :format(n), 2)
  end
  local host, port = ...
  if type(host) ~= "string" then
    error("bad argument #1 to 'setpeername' (string expected, got " .. type(host) .. ")", 2)
  end
  if host:sub(1, 5) == "unix:" then
    return nil, "unix domain sockets are not supported by luaio's ngx.socket.udp"
  end
  if math.type(tonumber(port)) ~= "integer" then
    error("bad argument #2 to 'setpeername' (number expected, got " .. type(port) .. ")", 2)
  end
  port = math.tointeger(tonumber(port))
  if port < 0 or port > 65535 then return nil, "bad port number: " .. port end
  intask("setpeername")
  if self._u then self:close() end
  local addr = host
  if not is_ip(host) then
    local ok, list = pcall(aio.getaddrinfo, host, port, { type = "dgram" })
    if not ok then
      if aio.is(list, aio.CancelledError) then error(list, 0) end
      local code = type(list) == "table" and list.code or ""
      return nil, ("%s could not be resolved (%s)"):format(host,
        code == "EAI_AGAIN" and "2: Server failure" or "3: Host not found")
    end
    addr = list[1].addr
  end
  local ok, u = pcall(aio.open_udp, { host = addr:find(":", 1, true) and "::" or "0.0.0.0", port = 0 })
  if not ok then
    if aio.is(u, aio.OSError) then return nil, oserror(u) end
    error(u, 0)
  end
  self._u, self._peer = u, { addr, port }
  return 1
end

--- sock:send(data) -> 1 | nil, err
function Sock:send(data)
  checkself(self, "send")
  local ok, s = pcall(tostr, data)
  if not ok then error(s, 2) end
  local u = self._u
  if u == nil then return nil, "closed" end
  local sent, e = pcall(u.sendto, u, s, self._peer[1], self._peer[2])
  if sent then return 1 end
  if aio.is(e, aio.OSError) then return nil, oserror(e) end
  error(e, 0)
end

local function from_peer(_, self, u)
  local peer = self._peer
  while true do
    local data, ip, port = u:recvfrom()
    if ip == peer[1] and port == peer[2] then return data end
  end
end

--- sock:receive([size]) -> a datagram of the peer (cut to size, at most
--- 65536 bytes) | nil, err  (suspends; the read timeout applies)
function Sock:receive(size)
  checkself(self, "receive")
  if size ~= nil then
    if tonumber(size) == nil then
      error("bad argument #1 to 'receive' (number expected, got " .. type(size) .. ")", 2)
    end
    size = math.floor(tonumber(size))
    if size < 0 then error("bad argument #1 to 'receive' (bad size)", 2) end
    if size > MAX_DATAGRAM then size = MAX_DATAGRAM end
  end
  local u = self._u
  if u == nil then return nil, "closed" end
  if self._reading then return nil, "socket busy" end
  intask("receive")
  self._reading = true
  local ms = (self._rt or 0) > 0 and self._rt or DEFAULT_TIMEOUT
  local ok, data = pcall(aio.timeout, ms / 1000, from_peer, self, u)
  self._reading = false
  if ok then
    if size and #data > size then data = data:sub(1, size) end
    return data
  end
  if aio.is(data, aio.TimeoutError) then return nil, "timeout" end
  if aio.is(data, aio.OSError) then return nil, oserror(data) end
  if self._u == nil and not aio.is(data, aio.CancelledError) then return nil, "closed" end
  error(data, 0)
end

--- ngx.socket.udp() -> a UDP cosocket (not connected yet)
function M.udp()
  return setmetatable({}, Sock)
end

return M
