-- luaio.socket: LuaSocket's API (socket.tcp, connect, send, receive,
-- settimeout, select, dns, gettime, sleep, try/protect, sinks and
-- sources) whose calls suspend the running task instead of blocking the
-- process, so a library written for LuaSocket runs unchanged in a task,
-- as copas serves them.  aio.socket.install() makes require "socket" (and
-- "socket.core") return this module; LuaSocket's own Lua modules
-- (socket.http, socket.url, ltn12, mime from Debian's lua-socket) then
-- work over it.
--
-- Sockets are luaio streams underneath: a client keeps its own buffer of
-- what it read and did not return yet (what "dirty" reports), and reads
-- from the stream with reader:read, which a timeout or a cancellation
-- interrupts without losing a byte.  Writes go to the stream's queue;
-- send waits for it to drain (the timeout applies there).
--
-- Timeouts are LuaSocket's: settimeout(nil or negative) blocks (here:
-- suspends) for as long as it takes, settimeout(0) never waits, "b" (the
-- default) bounds each wait of a call, "t" the whole call.  Errors are
-- LuaSocket's strings: "timeout", "closed", "connection refused", ...;
-- a call that is not in a task (outside aio.run) raises
-- "luaio.socket: <method> needs a running task (call it inside aio.run)".
-- Cancelling the task raises CancelledError out of the call, as any
-- suspension point does (the socket stays usable: nothing read is lost).
-- (luaio.streams is reached through aio, not required again.)
local aio = require "luaio"
local core = require "luaio.core"

local M = {}
M._VERSION = "LuaSocket 3.1.0 (luaio)"
M._SETSIZE = 1024
M.BLOCKSIZE = 2048

local is = core.is
local format = string.format
local TimeoutError, OSError = core.TimeoutError, core.OSError

local BUFSIZE = 65536

------------------------------------------------------------------ errors
-- LuaSocket's words for the system's errors (its socket_strerror and
-- gai_strerror), by libuv's code.
local MESSAGES = {
  ECONNREFUSED = "connection refused", ECONNRESET = "closed",
  ECONNABORTED = "closed", EPIPE = "closed", ETIMEDOUT = "timeout",
  EADDRINUSE = "address already in use", EISCONN = "already connected",
  EACCES = "permission denied", EADDRNOTAVAIL = "address not available",
  ENETUNREACH = "network is unreachable", EHOSTUNREACH = "host is unreachable",
  EAI_NONAME = "host or service not provided, or not known",
  EAI_AGAIN = "temporary failure in name resolution",
  EAI_FAIL = "non-recoverable failure in name resolution",
  EAI_FAMILY = "ai_family not supported",
  EAI_SERVICE = "service not supported for socket type",
}

-- The LuaSocket message for an error raised by a stream call; errors
-- that are not I/O (a bug, a cancellation) go on.
local function message(err)
  if is(err, TimeoutError) then return "timeout" end
  if is(err, OSError) then
    local m = tostring(err.message or err.code)
    return MESSAGES[err.code] or m:match("^[%w_]+: (.*)$") or m
  end
  if err == "write: the writer is closed" then return "closed" end
  error(err, 0)
end

local function need_task(fname)
  if core.current_task() == nil then
    error(format("luaio.socket: %s needs a running task (call it inside aio.run)", fname), 3)
  end
end

------------------------------------------------------------------ timeouts
-- The deadline of one wait of a call that began at start (nil: none).
local function deadline(s, start)
  local t = s._timeout
  if t == nil then return nil end
  if s._total then return start + t end
  return aio.time() + t
end

local function bounded(cm, fn, a, b)
  local _ <close> = cm
  return fn(a, b)
end

-- fn(a, b) by the deadline: true, its result, or false, the error.
local function waiting(when, fn, a, b)
  if when == nil then return pcall(fn, a, b) end
  return pcall(bounded, aio.timeout_at(when), fn, a, b)
end

------------------------------------------------------------------ objects
-- Classes as LuaSocket names them ("tcp{client}"), and the checks of
-- self their methods make (which blame the method's caller):
-- -> is_one(s), check(s, class, fname), check_any(s, fname).
local function classes(kind, names)
  for class, name in pairs(names) do
    class.__index = class
    class.__name = name
    class.__tostring = function(s) return format("%s: %p", name, s) end
  end
  local function is_one(s)
    local mt = getmetatable(s)
    return mt ~= nil and names[mt] ~= nil
  end
  local function check(s, class, fname)
    if getmetatable(s) ~= class then
      error(format("calling '%s' on bad self (%s expected, got %s)", fname, class.__name,
        is_one(s) and getmetatable(s).__name or type(s)), 3)
    end
    return s
  end
  local function check_any(s, fname)
    if not is_one(s) then
      error(format("calling '%s' on bad self (%s object expected, got %s)", fname, kind,
        type(s)), 3)
    end
    return s
  end
  return is_one, check, check_any
end

local Master, Client, Server = {}, {}, {}
local is_socket, check, check_any = classes("tcp", {
  [Master] = "tcp{master}", [Client] = "tcp{client}", [Server] = "tcp{server}",
})

local function new_master(family)
  return setmetatable({ _family = family, _timeout = nil, _total = false }, Master)
end

local function new_client(r, w, from)
  return setmetatable({
    _r = r, _w = w, _buf = "", _at = 1, _eof = false, _closed = false,
    _timeout = from and from._timeout, _total = from and from._total or false,
    _received = 0, _sent = 0, _born = aio.time(),
  }, Client)
end

------------------------------------------------------------------ common
local function settimeout(s, t, mode)
  if t ~= nil and type(t) ~= "number" then
    error("bad argument #1 to 'settimeout' (number expected, got " .. type(t) .. ")", 3)
  end
  if mode ~= nil and mode ~= "b" and mode ~= "t" and mode ~= "r" then
    error("bad argument #2 to 'settimeout' (invalid timeout mode)", 3)
  end
  if t == nil or t < 0 then s._timeout = nil else s._timeout = t end
  s._total = mode == "t"
  return 1
end
Master.settimeout = function(s, t, m)
  local r = settimeout(check_any(s, "settimeout"), t, m)
  return r
end
Client.settimeout, Server.settimeout = Master.settimeout, Master.settimeout

local OPTIONS = {
  keepalive = true, reuseaddr = true, reuseport = true, ["tcp-nodelay"] = true,
  linger = true, ["ipv6-v6only"] = true, ["tcp-keepidle"] = true,
  ["tcp-keepcnt"] = true, ["tcp-keepintvl"] = true,
}
-- setoption/getoption for a class that accepts the options in accepted:
-- they are remembered and given back (default(name) until set).  luaio's
-- TCP sockets already run with TCP_NODELAY and SO_REUSEADDR (servers);
-- the rest is not applied.
local function option_store(accepted, default)
  local function setoption(s, name, value)
    if not accepted[name] then return nil, "unsupported option" end
    s._options = s._options or {}
    s._options[name] = value
    return 1
  end
  local function getoption(s, name)
    if not accepted[name] then return nil, "unsupported option" end
    local v = s._options and s._options[name]
    if v == nil then v = default(name) end
    return v
  end
  return setoption, getoption
end
local setoption, getoption = option_store(OPTIONS,
  function(name) return name == "tcp-nodelay" end)
for _, class in ipairs { Master, Client, Server } do
  class.setoption = function(s, n, v) return setoption(check_any(s, "setoption"), n, v) end
  class.getoption = function(s, n) return getoption(check_any(s, "getoption"), n) end
  class.getfd = function() return -1 end     -- (no descriptor to hand out)
  class.setfd = function() end
end

------------------------------------------------------------------ master
--- master:connect(address, port) -> 1 | nil, err  (suspends)
function Master:connect(host, port)
  check(self, Master, "connect")
  need_task("connect")
  if type(host) ~= "string" then return nil, "host or service not provided, or not known" end
  if self._bound then return nil, "connect after bind is not supported by luaio.socket" end
  local open = aio.open_connection
  if self._family == "unix" then
    open, port = aio.open_unix_connection, nil   -- (host is the path)
  else
    port = tonumber(port)
    if port == nil then return nil, "service not supported for socket type" end
  end
  local ok, r, w = waiting(deadline(self, aio.time()), open, host, port)
  if not ok then return nil, message(r) end
  local c = new_client(r, w, self)
  c._options = self._options
  setmetatable(self, Client)
  for k, v in pairs(c) do self[k] = v end
  return 1
end

--- master:bind(address, port) -> 1 | nil, err (the address for listen)
function Master:bind(host, port)
  check(self, Master, "bind")
  if host == "*" then host = "0.0.0.0" end
  self._bound = { host = host, port = tonumber(port) or 0 }
  return 1
end

--- master:listen([backlog]) -> 1 | nil, err: the master becomes a server
function Master:listen(backlog)
  check(self, Master, "listen")
  need_task("listen")
  local b = self._bound
  if not b then return nil, "bind the socket before listen" end
  local srv = self
  srv._queue, srv._waiting = {}, nil
  local function on_client(r, w)
    local c = new_client(r, w, srv)
    c._done = aio.Event()
    local q = srv._queue
    q[#q + 1] = c
    if srv._waiting then srv._waiting:set() end
    c._done:wait()                     -- the connection lives until closed
  end
  local ok, server
  if self._family == "unix" then
    ok, server = pcall(aio.start_unix_server, on_client, b.host, { backlog = backlog })
  else
    ok, server = pcall(aio.start_server, on_client, b.host, b.port, { backlog = backlog })
  end
  if not ok then return nil, message(server) end
  srv._server = server
  setmetatable(srv, Server)
  return 1
end

function Master:close()
  check(self, Master, "close")
  self._closed = true
  return 1
end

function Master:getsockname()
  check(self, Master, "getsockname")
  return nil, "not bound"
end

------------------------------------------------------------------ server
--- server:accept() -> client | nil, err  (suspends)
function Server:accept()
  check(self, Server, "accept")
  need_task("accept")
  if self._closed then return nil, "closed" end
  local start = aio.time()
  while #self._queue == 0 do
    self._waiting = aio.Event()
    local ok, err = waiting(deadline(self, start), self._waiting.wait, self._waiting)
    self._waiting = nil
    if not ok then return nil, message(err) end
    if self._closed then return nil, "closed" end
  end
  return table.remove(self._queue, 1)
end

function Server:getsockname()
  check(self, Server, "getsockname")
  local host, port = self._server:getsockname()
  if self._family == "unix" then return host end
  return host, port, host and host:find(":", 1, true) and "inet6" or "inet"
end

function Server:close()
  check(self, Server, "close")
  if not self._closed then
    self._closed = true
    self._server:close()
    for _, c in ipairs(self._queue) do c:close() end
    self._queue = {}
    if self._waiting then self._waiting:set() end
  end
  return 1
end

------------------------------------------------------------------ client
local function client_closed(s)
  s._closed = true
  if s._w then pcall(s._w.close, s._w) end
  if s._done then s._done:set() end
end

-- What was read and not returned yet is s._buf from s._at on (a line or a
-- count is returned by moving s._at, not by copying what follows it).
local function unread(s) return #s._buf - s._at + 1 end

-- Reads more by the deadline, into s._buf (after what is unread) or, with
-- into, onto that list: nil, or an error message ("closed" at the end of
-- the stream).
local function fill(s, when, into)
  if s._eof then return "closed" end
  local ok, data = waiting(when, s._r.read, s._r, BUFSIZE)
  if not ok then return message(data) end
  if data == nil then
    s._eof = true
    return "closed"
  end
  s._received = s._received + #data
  if into then
    into[#into + 1] = data
  elseif s._at > #s._buf then
    s._buf, s._at = data, 1
  else
    s._buf, s._at = s._buf:sub(s._at) .. data, 1
  end
  return nil
end

-- All that is unread, as a partial result: the buffer is emptied.
local function take_all(s)
  local b = s._at == 1 and s._buf or s._buf:sub(s._at)
  s._buf, s._at = "", 1
  return b
end

local function receive_line(s, start)
  local scanned = 0                    -- (unread bytes known to hold no LF)
  while true do
    local i = s._buf:find("\n", s._at + scanned, true)
    if i then
      local line = s._buf:sub(s._at, i - 1)
      s._at = i + 1
      return (line:gsub("\r", ""))
    end
    scanned = unread(s)
    local err = fill(s, deadline(s, start))
    if err then return nil, err, (take_all(s):gsub("\r", "")) end
  end
end

local function receive_all(s, start)
  local parts = { take_all(s) }
  while true do
    local err = fill(s, deadline(s, start), parts)
    if err == "closed" then return table.concat(parts) end
    if err then return nil, err, table.concat(parts) end
  end
end

local function receive_n(s, n, start)
  while unread(s) < n do
    local err = fill(s, deadline(s, start))
    if err then return nil, err, take_all(s) end
  end
  local at = s._at
  s._at = at + n
  return s._buf:sub(at, at + n - 1)
end

--- client:receive([pattern [, prefix]]) -> data | nil, err, partial
--- pattern: "*l" (default; a line without its end, CRs dropped), "*a"
--- (to the end of the stream), or a number of bytes.  (suspends)
function Client:receive(pattern, prefix)
  check(self, Client, "receive")
  need_task("receive")
  if prefix ~= nil and type(prefix) ~= "string" and type(prefix) ~= "number" then
    error("bad argument #2 to 'receive' (string expected, got " .. type(prefix) .. ")", 2)
  end
  prefix = prefix and tostring(prefix) or ""
  if self._closed then return nil, "closed", prefix end
  pattern = pattern or "*l"
  local start = aio.time()
  local data, err, partial
  if type(pattern) == "number" then
    if pattern < 0 then error("bad argument #1 to 'receive' (invalid receive pattern)", 2) end
    data, err, partial = receive_n(self, math.floor(pattern), start)
  elseif pattern == "*l" or pattern == "l" then
    data, err, partial = receive_line(self, start)
  elseif pattern == "*a" or pattern == "a" then
    data, err, partial = receive_all(self, start)
  else
    error("bad argument #1 to 'receive' (invalid receive pattern)", 2)
  end
  if data then return prefix .. data end
  return nil, err, prefix .. partial
end

--- client:send(data [, i [, j]]) -> last index sent | nil, err, last index
--- sent.  (suspends while much is queued)
function Client:send(data, i, j)
  check(self, Client, "send")
  need_task("send")
  if type(data) == "number" then data = tostring(data) end
  if type(data) ~= "string" then
    error("bad argument #1 to 'send' (string expected, got " .. type(data) .. ")", 2)
  end
  local len = #data
  i, j = i or 1, j or -1
  if i < 0 then i = math.max(len + i + 1, 1) elseif i == 0 then i = 1 end
  if j < 0 then j = len + j + 1 elseif j > len then j = len end
  if self._closed then return nil, "closed", i - 1 end
  if i > j then return j < i and i - 1 or j end
  local piece = (i == 1 and j == len) and data or data:sub(i, j)
  local ok, err = pcall(self._w.write, self._w, piece)
  if not ok then return nil, message(err), i - 1 end
  self._sent = self._sent + #piece
  ok, err = waiting(deadline(self, aio.time()), self._w.drain, self._w)
  if not ok then return nil, message(err), j end
  return j
end

--- client:close() -> 1
function Client:close()
  check(self, Client, "close")
  if not self._closed then client_closed(self) end
  return 1
end

--- client:shutdown([mode = "both"]) -> 1
function Client:shutdown(mode)
  check(self, Client, "shutdown")
  mode = mode or "both"
  if mode ~= "both" and mode ~= "send" and mode ~= "receive" then
    error("bad argument #1 to 'shutdown' (invalid shutdown method)", 2)
  end
  if self._closed then return nil, "closed" end
  if mode == "receive" then
    self._eof = true
  elseif mode == "send" then
    if self._w:can_write_eof() then pcall(self._w.write_eof, self._w) end
  else
    client_closed(self)
  end
  return 1
end

local function address(w, which)
  local host, port = w:get_extra_info(which)
  if host == nil then return nil, "closed" end
  return host, port, host:find(":", 1, true) and "inet6" or "inet"
end
function Client:getpeername()
  check(self, Client, "getpeername")
  return address(self._w, "peername")
end
function Client:getsockname()
  check(self, Client, "getsockname")
  return address(self._w, "sockname")
end

--- client:dirty() -> whether data read is waiting in the buffer
function Client:dirty()
  check(self, Client, "dirty")
  return unread(self) > 0
end

function Client:getstats()
  check(self, Client, "getstats")
  return self._received, self._sent, aio.time() - self._born
end
function Client:setstats(received, sent, age)
  check(self, Client, "setstats")
  self._received, self._sent = received or self._received, sent or self._sent
  if age then self._born = aio.time() - age end
  return 1
end

------------------------------------------------------------------ module
--- socket.tcp() -> master (tcp4, tcp6 alike: the address decides)
function M.tcp() return new_master("inet") end
M.tcp4 = M.tcp
function M.tcp6() return new_master("inet6") end

--- socket.unix() / socket.unix.stream() -> a master for unix domain
--- sockets: master:connect(path)  (LuaSocket's socket.unix)
M.unix = setmetatable({
  stream = function() return new_master("unix") end,
}, { __call = function() return new_master("unix") end })

--- socket.connect(address, port) -> client | nil, err  (suspends)
function M.connect(host, port)
  need_task("connect")
  local s = new_master("inet")
  local ok, err = s:connect(host, port)
  if not ok then return nil, err end
  return s
end
M.connect4, M.connect6 = M.connect, M.connect

--- socket.bind(address, port [, backlog]) -> server | nil, err
function M.bind(host, port, backlog)
  need_task("bind")
  local s = new_master("inet")
  s:bind(host, port)
  local ok, err = s:listen(backlog or 32)
  if not ok then return nil, err end
  return s
end

--- socket.gettime() -> seconds since the epoch (the system clock)
M.gettime = core.wall_time

--- socket.sleep(seconds)  (suspends the task)
function M.sleep(t)
  need_task("sleep")
  aio.sleep(t)
end

-- The sockets of a select list: the array part, as LuaSocket reads it.
local function members(t)
  local out = {}
  if t == nil then return out end
  for _, s in ipairs(t) do
    if is_socket(s) then out[#out + 1] = s end
  end
  return out
end

local function ready_now(s)
  if getmetatable(s) == Client then return unread(s) > 0 or s._eof or s._closed end
  if getmetatable(s) == Server then return #s._queue > 0 or s._closed end
  return false
end

-- Waits until s has something to read (a client's buffer grows; a
-- server's queue), then returns s.
local function watch(s)
  if getmetatable(s) == Client then
    fill(s, nil)
  else
    while #s._queue == 0 and not s._closed do
      s._waiting = s._waiting or aio.Event()
      s._waiting:wait()
    end
  end
  return s
end

local function add(list, s)
  list[#list + 1] = s
  list[s] = true
end

--- socket.select(recvt, sendt [, timeout]) -> readable, writable, err
--- (suspends).  Sockets are always writable here (writes are queued).
function M.select(recvt, sendt, timeout)
  need_task("select")
  local readable, writable = {}, {}
  local rs = members(recvt)
  for _, s in ipairs(members(sendt)) do
    if getmetatable(s) == Client and not s._closed then add(writable, s) end
  end
  for _, s in ipairs(rs) do
    if ready_now(s) then add(readable, s) end
  end
  if #readable > 0 or #writable > 0 then return readable, writable end
  if #rs == 0 then
    if timeout and timeout >= 0 then aio.sleep(timeout) else aio.sleep(math.huge) end
    return readable, writable, "timeout"
  end
  if timeout and timeout == 0 then return readable, writable, "timeout" end
  local tasks = {}
  for i, s in ipairs(rs) do tasks[i] = aio.create_task(watch, s) end
  local ok, done = pcall(aio.wait, tasks, {
    timeout = timeout and timeout >= 0 and timeout or nil,
    return_when = aio.FIRST_COMPLETED,
  })
  for _, t in ipairs(tasks) do t:cancel() end
  for _, t in ipairs(tasks) do pcall(t.await, t) end    -- (cancelled reads lose nothing)
  if not ok then error(done, 0) end
  for _, s in ipairs(rs) do
    if ready_now(s) then add(readable, s) end
  end
  if #readable == 0 then return readable, writable, "timeout" end
  return readable, writable
end

------------------------------------------------------------------ dns
local dns = {}
M.dns = dns

local function lookup(name, fname)
  need_task(fname)
  if type(name) ~= "string" then
    error(format("bad argument #1 to '%s' (string expected, got %s)", fname, type(name)), 3)
  end
  local ok, list = pcall(aio.getaddrinfo, name, nil, { type = "stream" })
  if not ok then return nil, message(list) end
  return list
end

--- socket.dns.toip(name) -> first IPv4 address, {name, alias, ip} | nil, err
function dns.toip(name)
  local list, err = lookup(name, "toip")
  if not list then return nil, err end
  local ips = {}
  for _, e in ipairs(list) do
    if e.family == "inet" then ips[#ips + 1] = e.addr end
  end
  if #ips == 0 then return nil, MESSAGES.EAI_NONAME end
  return ips[1], { name = name, alias = {}, ip = ips }
end

--- socket.dns.getaddrinfo(name) -> {{family = "inet" | "inet6", addr}} | nil, err
function dns.getaddrinfo(name)
  local list, err = lookup(name, "getaddrinfo")
  if not list then return nil, err end
  local out = {}
  for _, e in ipairs(list) do out[#out + 1] = { family = e.family, addr = e.addr } end
  return out
end

--- socket.dns.gethostname() -> this machine's name
function dns.gethostname()
  return core.hostname()
end

------------------------------------------------------------------ try/protect
-- An error raised by try: protect turns it back into nil, message.
local Failure = { __name = "socket.try failure" }
Failure.__tostring = function(e) return tostring(e[1]) end

--- socket.newtry([finalizer]) -> try: try(...) returns its arguments
--- when the first is true, else calls finalizer and raises the second.
function M.newtry(finalizer)
  return function(...)
    if (...) then return ... end
    if finalizer then pcall(finalizer) end
    error(setmetatable({ (select(2, ...)) }, Failure), 0)
  end
end
M.try = M.newtry()

--- socket.protect(fn) -> a function that returns nil, message for an
--- error raised by try (other errors go on).
function M.protect(fn)
  return function(...)
    local r = table.pack(pcall(fn, ...))
    if r[1] then return table.unpack(r, 2, r.n) end
    local e = r[2]
    if getmetatable(e) == Failure then return nil, e[1] end
    error(e, 0)
  end
end

--- socket.skip(d, ...) -> the arguments after the first d
function M.skip(d, ...)
  return select(d + 1, ...)
end

------------------------------------------------------------------ sinks, sources
-- LTN12 sinks and sources over a socket (socket.sink, socket.source), as
-- socket.http uses them; mode tables sinkt and sourcet, open to additions.
M.sinkt, M.sourcet = {}, {}

M.sinkt["close-when-done"] = function(sock)
  return function(chunk)
    if not chunk then
      sock:close()
      return 1
    end
    return sock:send(chunk)
  end
end

M.sinkt["keep-open"] = function(sock)
  return function(chunk)
    if chunk then return sock:send(chunk) end
    return 1
  end
end
M.sinkt.default = M.sinkt["keep-open"]

function M.sink(mode, sock)
  local f = M.sinkt[mode or "default"]
  if not f then error("unknown sink mode", 2) end
  return f(sock)
end

M.sourcet["by-length"] = function(sock, length)
  return function()
    if length <= 0 then return nil end
    local chunk, err = sock:receive(math.min(M.BLOCKSIZE, length))
    if err then return nil, err end
    length = length - #chunk
    return chunk
  end
end

M.sourcet["until-closed"] = function(sock)
  local done = false
  return function()
    if done then return nil end
    local chunk, err, partial = sock:receive(M.BLOCKSIZE)
    if not err then return chunk end
    if err == "closed" then
      sock:close()
      done = true
      return partial
    end
    return nil, err
  end
end
M.sourcet.default = M.sourcet["until-closed"]

function M.source(mode, ...)
  local f = M.sourcet[mode or "default"]
  if not f then error("unknown source mode", 2) end
  return f(...)
end

------------------------------------------------------------------ ssl
-- The part of LuaSec's API that drivers call (ssl.wrap, newcontext,
-- conn:sni, conn:dohandshake), on luaio's TLS: LuaSec itself does its
-- own I/O on the raw descriptor, which a luaio stream does not hand out.
-- Parameters as LuaSec's: mode ("client" | "server"), protocol ("any",
-- "tlsv1_2", "tlsv1_3"), verify ("none" | "peer" | a list of them; as
-- LuaSec, nothing is verified unless "peer" is asked for), cafile,
-- capath, certificate, key, password, ciphers, alpn.
local ssl = { _VERSION = "1.2.0 (luaio)" }
M.ssl = ssl

local Context = { __name = "SSL context (luaio)" }
Context.__index = Context

local function wants(list, v)
  if list == v then return true end
  if type(list) ~= "table" then return false end
  for _, x in ipairs(list) do if x == v then return true end end
  return false
end

--- ssl.newcontext(params) -> context | nil, err
function ssl.newcontext(cfg)
  if type(cfg) ~= "table" then
    error("bad argument #1 to 'newcontext' (table expected, got " .. type(cfg) .. ")", 2)
  end
  local mode = cfg.mode or "client"
  if mode ~= "client" and mode ~= "server" then return nil, "invalid mode" end
  local ok, ctx = pcall(function()
    local c
    if mode == "client" then
      c = aio.ssl.create_default_context("server_auth",
        (cfg.cafile or cfg.capath) and { cafile = cfg.cafile, capath = cfg.capath } or nil)
      c.verify = wants(cfg.verify, "peer")
    else
      c = aio.ssl.create_default_context("client_auth")
      if cfg.cafile or cfg.capath then c:load_verify_locations(cfg.cafile, cfg.capath) end
      if wants(cfg.verify, "peer") then c.verify = true end
    end
    if cfg.certificate then c:load_cert_chain(cfg.certificate, cfg.key, cfg.password) end
    if cfg.protocol == "tlsv1_3" then c.minimum_version = "TLSv1.3" end
    if cfg.ciphers then c:set_ciphers(cfg.ciphers) end
    if cfg.alpn then
      c:set_alpn_protocols(type(cfg.alpn) == "table" and cfg.alpn or { cfg.alpn })
    end
    return c
  end)
  if not ok then return nil, tostring(ctx.message or ctx) end
  return setmetatable({ _ctx = ctx, _mode = mode }, Context)
end

--- ssl.wrap(sock, params | context) -> the TLS socket | nil, err.  The
--- plain socket is used up (its methods then say "closed").
function ssl.wrap(sock, cfg)
  check(sock, Client, "wrap")
  local ctx = cfg
  if getmetatable(cfg) ~= Context then
    local err
    ctx, err = ssl.newcontext(cfg)
    if not ctx then return nil, err end
  end
  if sock._closed then return nil, "closed" end
  local t = setmetatable({}, Client)
  for k, v in pairs(sock) do t[k] = v end
  t._tls = { ctx = ctx._ctx, server = ctx._mode == "server" }
  sock._closed, sock._w, sock._done = true, nil, nil   -- (moved, not closed)
  return t
end

--- conn:sni(name): the server name a client sends (and checks)
function Client:sni(name)
  check(self, Client, "sni")
  if not self._tls then error("sni: not a socket made by ssl.wrap", 2) end
  self._tls.sni = name
  return 1
end

--- conn:dohandshake() -> true | nil, err  (suspends)
function Client:dohandshake()
  check(self, Client, "dohandshake")
  need_task("dohandshake")
  local tls = self._tls
  if not tls then error("dohandshake: not a socket made by ssl.wrap", 2) end
  if self._closed then return nil, "closed" end
  if tls.done then return true end
  if unread(self) > 0 then return nil, "data came before the handshake" end
  local ok, e = waiting(deadline(self, aio.time()), function()
    self._w:start_tls(tls.ctx, { server_hostname = tls.sni or "", server_side = tls.server })
  end)
  if not ok then
    if is(e, core.SSLError) then
      local m = tostring(e.message or e)
      return nil, m:match("^start_tls: (.*)$") or m
    end
    return nil, message(e)
  end
  tls.done = true
  return true
end

------------------------------------------------------------------ udp
-- socket.udp, udp4, udp6: luaio.socket_udp, with this module's words for
-- errors and its check for a running task.
M._message, M._need_task, M._classes, M._settimeout = message, need_task, classes, settimeout
M._option_store = option_store
require("luaio.socket_udp")(M)

------------------------------------------------------------------ install
local INSTALL_OPTIONS = { ssl = true }

--- socket.install([{ssl = true}]) -> the module: require "socket" and
--- "socket.core" return it from now on (LuaSocket's socket.http,
--- socket.url, ltn12 and mime then run over it); with ssl, require "ssl"
--- returns socket.ssl (LuaSec's ssl.https then runs over it).
function M.install(opts)
  if opts ~= nil and type(opts) ~= "table" then
    error("bad argument #1 to 'install' (table expected, got " .. type(opts) .. ")", 2)
  end
  core.check_options(opts, "install", INSTALL_OPTIONS, 2)
  package.loaded["socket.core"] = M
  package.loaded.socket = M
  package.loaded["socket.unix"] = M.unix
  if opts and opts.ssl then package.loaded.ssl = ssl end
  return M
end

return M
