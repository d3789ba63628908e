-- luaio.socket_udp: LuaSocket's UDP objects (socket.udp, udp4, udp6) for
-- luaio.socket, on aio.open_udp; loaded by luaio.socket, which passes
-- itself (its helpers _message, _need_task, _classes, _settimeout and
-- _option_store).
--
-- An object is "udp{unconnected}" (setsockname, sendto, receivefrom)
-- until setpeername gives it a peer: then "udp{connected}" (send,
-- receive, getpeername) until setpeername("*").  The luaio socket
-- underneath is made by the first call that needs one: bound where
-- setsockname says, else to the wildcard address of the peer's family
-- (port 0).  A connected object keeps only the datagrams its peer sent:
-- the others are read and dropped, as the system does for a connected
-- socket.  What differs from LuaSocket: getsockname of a connected
-- object gives the wildcard address it is bound to; the options are
-- remembered, not applied (reuseaddr, reuseport, dontroute; the rest
-- answer "unsupported option"); the system's ICMP errors ("connection
-- refused") are not reported (an unanswered query times out);
-- socket.select does not watch UDP objects.
--
-- receive and receivefrom suspend the running task (settimeout bounds
-- them: nil, "timeout"); a cancellation goes on as CancelledError and
-- loses no datagram.  Outside a task, a call that needs the loop raises
-- "luaio.socket: <method> needs a running task (call it inside aio.run)".
local aio = require "luaio"

local format = string.format

-- LuaSocket's UDP_DATAGRAMSIZE: receive's default size
local DATAGRAMSIZE = 8192

local OPTIONS = { reuseaddr = true, reuseport = true, dontroute = true }

return function(socket)
  local message, need_task = socket._message, socket._need_task

  local Unconnected, Connected = {}, {}
  local _, check, check_any = socket._classes("udp", {
    [Unconnected] = "udp{unconnected}", [Connected] = "udp{connected}",
  })

  ---------------------------------------------------------------- addresses
  local function is_ip(host)
    return host:match("^%d+%.%d+%.%d+%.%d+$") or host:find(":", 1, true)
  end

  -- host (a name or an address) as an address of the socket's family:
  -- the address | nil, LuaSocket's error.
  local function resolve(s, host, port)
    if type(host) ~= "string" then return nil, "host or service not provided, or not known" end
    if is_ip(host) then return host end
    local fam = s._family ~= "inet?" and s._family or nil
    local ok, list = pcall(aio.getaddrinfo, host, port, { family = fam, type = "dgram" })
    if not ok then return nil, message(list) end
    if #list == 0 then return nil, "host or service not provided, or not known" end
    return list[1].addr
  end

  local function checkport(port, n, fname)
    local p = tonumber(port)
    if p == nil or p ~= math.floor(p) or p < 0 or p > 65535 then
      error(format("bad argument #%d to '%s' (invalid port)", n, fname), 3)
    end
    return math.tointeger(p)
  end

  -- Makes the luaio socket, bound to host:port: true | nil, err.
  local function open(s, host, port)
    local ok, u = pcall(aio.open_udp, { host = host, port = port })
    if not ok then return nil, message(u) end
    s._u = u
    if s._family == "inet?" then s._family = host:find(":", 1, true) and "inet6" or "inet" end
    return true
  end

  -- The luaio socket, made when missing (bound to the wildcard address
  -- of addr's family): the socket | nil, err.
  local function sock(s, addr)
    if s._closed then return nil, "closed" end
    if s._u then return s._u end
    local six = s._family == "inet6" or (s._family == "inet?" and addr and addr:find(":", 1, true))
    local ok, err = open(s, six and "::" or "0.0.0.0", 0)
    if not ok then return nil, err end
    return s._u
  end

  ---------------------------------------------------------------- waiting
  local function bounded(cm, fn, a)
    local _ <close> = cm
    return fn(a)
  end

  -- u:recvfrom() by the socket's timeout: data, ip, port | nil, err.
  local function recv(s, u, start)
    local t = s._timeout
    local ok, data, ip, port
    if t == nil then
      ok, data, ip, port = pcall(u.recvfrom, u)
    else
      ok, data, ip, port = pcall(bounded, aio.timeout_at(start + t), u.recvfrom, u)
    end
    if not ok then
      if s._closed and not aio.is(data, aio.CancelledError) then return nil, "closed" end
      return nil, message(data)
    end
    return data, ip, port
  end

  local function cut(data, size, fname)
    if size == nil then size = DATAGRAMSIZE end
    size = tonumber(size)
    if size == nil or size < 0 then
      error(format("bad argument #1 to '%s' (number expected)", fname), 3)
    end
    if #data > size then return data:sub(1, math.floor(size)) end
    return data
  end

  ---------------------------------------------------------------- common
  -- (tcp's: the same checks and fields; its errors blame our caller)
  local function settimeout(s, t, mode)
    local r = socket._settimeout(check_any(s, "settimeout"), t, mode)
    return r
  end

  local function gettimeout(s)
    check_any(s, "gettimeout")
    return s._timeout or -1, -1
  end

  local function close(s)
    check_any(s, "close")
    if not s._closed then
      s._closed = true
      if s._u then s._u:close() end
      s._u = nil
    end
    return 1
  end

  local function getsockname(s)
    check_any(s, "getsockname")
    if s._closed then return nil, "closed" end
    if not s._u then return nil, "not bound" end
    local ip, port = s._u:getsockname()
    return ip, port, s._family
  end

  local set_option, get_option = socket._option_store(OPTIONS, function() return false end)

  local function setoption(s, name, value)
    return set_option(check_any(s, "setoption"), name, value)
  end

  local function getoption(s, name)
    return get_option(check_any(s, "getoption"), name)
  end

  --- udp:setpeername(address, port) -> 1 | nil, err: the object becomes
  --- connected; setpeername("*") makes it unconnected again
  local function setpeername(s, host, port)
    check_any(s, "setpeername")
    if host == "*" then
      s._peer = nil
      setmetatable(s, Unconnected)
      return 1
    end
    if port == nil then
      error("bad argument #2 to 'setpeername' (string expected, got no value)", 2)
    end
    port = checkport(port, 2, "setpeername")
    need_task("setpeername")
    local addr, err = resolve(s, host, port)
    if not addr then return nil, err end
    local _, e = sock(s, addr)
    if e then return nil, e end
    s._peer = { addr, port }
    setmetatable(s, Connected)
    return 1
  end

  for _, class in ipairs { Unconnected, Connected } do
    class.settimeout, class.gettimeout, class.close = settimeout, gettimeout, close
    class.getsockname, class.setpeername = getsockname, setpeername
    class.setoption, class.getoption = setoption, getoption
    class.dirty = function(s)
      check_any(s, "dirty")
      return false               -- (datagrams are never buffered here)
    end
    class.getfamily = function(s)
      check_any(s, "getfamily")
      return s._family == "inet6" and "inet6" or "inet"
    end
    class.getfd = function() return -1 end
    class.setfd = function() end
  end

  ---------------------------------------------------------------- unconnected
  --- udp:setsockname(address, port) -> 1 | nil, err  ("*": any address)
  function Unconnected:setsockname(host, port)
    check(self, Unconnected, "setsockname")
    need_task("setsockname")
    if self._closed then return nil, "closed" end
    if self._u then return nil, "already bound" end
    port = checkport(port or 0, 2, "setsockname")
    if host == "*" then
      host = self._family == "inet6" and "::" or "0.0.0.0"
    else
      local err
      host, err = resolve(self, host, port)
      if not host then return nil, err end
    end
    local ok, err = open(self, host, port)
    if not ok then return nil, err end
    return 1
  end

  --- udp:sendto(datagram, ip, port) -> bytes sent | nil, err
  function Unconnected:sendto(data, host, port)
    check(self, Unconnected, "sendto")
    if type(data) ~= "string" then
      error("bad argument #1 to 'sendto' (string expected, got " .. type(data) .. ")", 2)
    end
    port = checkport(port, 3, "sendto")
    need_task("sendto")
    local addr, err = resolve(self, host, port)
    if not addr then return nil, err end
    local u, e = sock(self, addr)
    if not u then return nil, e end
    local ok, e2 = pcall(u.sendto, u, data, addr, port)
    if not ok then return nil, message(e2) end
    return #data
  end

  --- udp:receivefrom([size]) -> datagram, ip, port | nil, err  (suspends)
  function Unconnected:receivefrom(size)
    check(self, Unconnected, "receivefrom")
    need_task("receivefrom")
    local u, e = sock(self)
    if not u then return nil, e end
    local data, ip, port = recv(self, u, aio.time())
    if data == nil then return nil, ip end
    return cut(data, size, "receivefrom"), ip, port
  end

  --- udp:receive([size]) -> datagram | nil, err  (suspends)
  function Unconnected:receive(size)
    check(self, Unconnected, "receive")
    local data, err = self:receivefrom(size)
    return data, err
  end

  ---------------------------------------------------------------- connected
  --- udp:send(datagram) -> bytes sent | nil, err
  function Connected:send(data)
    check(self, Connected, "send")
    if type(data) ~= "string" then
      error("bad argument #1 to 'send' (string expected, got " .. type(data) .. ")", 2)
    end
    need_task("send")
    if self._closed then return nil, "closed" end
    local ok, e = pcall(self._u.sendto, self._u, data, self._peer[1], self._peer[2])
    if not ok then return nil, message(e) end
    return #data
  end

  --- udp:receive([size]) -> a datagram from the peer | nil, err  (suspends;
  --- datagrams from elsewhere are dropped)
  function Connected:receive(size)
    check(self, Connected, "receive")
    need_task("receive")
    if self._closed then return nil, "closed" end
    local start = aio.time()
    while true do
      local data, ip, port = recv(self, self._u, start)
      if data == nil then return nil, ip end
      local peer = self._peer
      if ip == peer[1] and port == peer[2] then return cut(data, size, "receive") end
    end
  end

  --- udp:getpeername() -> ip, port, family
  function Connected:getpeername()
    check(self, Connected, "getpeername")
    if self._closed then return nil, "closed" end
    return self._peer[1], self._peer[2], self._family
  end

  -- As LuaSocket's: both classes have every method; those of the other
  -- class raise "calling 'sendto' on bad self (udp{unconnected} expected,
  -- got udp{connected})".
  for _, pair in ipairs { { Unconnected, Connected }, { Connected, Unconnected } } do
    for k, f in pairs(pair[1]) do
      if type(f) == "function" and rawget(pair[2], k) == nil then pair[2][k] = f end
    end
  end

  ---------------------------------------------------------------- module
  local function new(family)
    return setmetatable({ _family = family, _timeout = nil }, Unconnected)
  end

  --- socket.udp() -> an unconnected UDP object (its family: the first
  --- address it meets); udp4, udp6: of that family
  function socket.udp() return new("inet?") end
  function socket.udp4() return new("inet") end
  function socket.udp6() return new("inet6") end
end
