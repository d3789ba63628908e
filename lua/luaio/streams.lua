-- luaio.streams: open_connection, start_server, unix sockets, UDP, DNS.
--
-- Streams (runtime/stream.c) follow asyncio's StreamReader/StreamWriter
-- with Lua's io conventions at EOF: read(n) and readline() return nil,
-- read() the rest ("" when nothing is left).  Host names are resolved
-- with getaddrinfo on the thread pool; each address is tried in turn.
--
-- Suspension points: open_connection/open_unix_connection (resolving,
-- connecting: a cancelled connect closes its socket), every read, drain,
-- wait_closed, serve_forever (cancelling it closes the server), recvfrom,
-- getaddrinfo, the TLS handshake (open_connection with ssl, start_tls: a
-- cancelled or failed handshake closes the socket).  A cancelled read
-- consumes nothing.  A server's handler runs as a task per connection;
-- when the task ends, however it ends (cancelled too), the connection is
-- closed as writer:close() closes it.
--
-- TLS (opts.ssl, writer:start_tls): the same stream and buffers, with
-- OpenSSL in between (runtime/tls.c); contexts come from luaio.ssl.
local core = require "luaio.core"

local M = {}

local reg = debug.getregistry()

-- The TLS engine (luaio.tls through luaio.ssl), loaded on first use.
local function tls() return require("luaio.ssl")._engine end

------------------------------------------------------------------ helpers
-- level 4: raised by a checker called from a public function (the
-- public function's caller is blamed); 3 when raised by it directly.
local function argerror(n, fname, msg, level)
  error(("bad argument #%d to '%s' (%s)"):format(n, fname, msg), level or 4)
end

-- Host names hold no '\0': getaddrinfo, inet_pton and OpenSSL would see
-- them cut there ("127.0.0.1\0evil" is 127.0.0.1).  (The core refuses
-- one too, but would name its own function.)
local function has_nul(s) return s:find("\0", 1, true) ~= nil end

local function checkhost(host, fname, n, optional)
  if host == nil and optional then return nil end
  if type(host) ~= "string" then
    argerror(n, fname, "host name or address expected, got " .. type(host))
  end
  if has_nul(host) then argerror(n, fname, "embedded null byte") end
  return host
end

local function checkport(port, fname, n)
  if math.type(port) == "integer" then
    if port < 0 or port > 65535 then argerror(n, fname, "port out of range") end
    return port
  end
  if type(port) == "string" and port:match("^%d+$") then
    port = math.tointeger(tonumber(port))
    if port < 0 or port > 65535 then argerror(n, fname, "port out of range") end
    return port
  end
  argerror(n, fname, "port number expected, got " .. (math.type(port) or type(port)))
end

-- server_hostname and ssl_handshake_timeout, for open_* and start_tls
-- (level: as for error, counted from the caller of this function).
local function check_tls_opts(opts, fname, level)
  if opts.server_hostname ~= nil and type(opts.server_hostname) ~= "string" then
    error(fname .. ": option 'server_hostname' must be a string", level + 1)
  end
  if opts.server_hostname ~= nil and has_nul(opts.server_hostname) then
    error(fname .. ": option 'server_hostname' has an embedded null byte", level + 1)
  end
  local t = opts.ssl_handshake_timeout
  if t ~= nil and (type(t) ~= "number" or t ~= t or t <= 0) then   -- (NaN too)
    error(fname .. ": option 'ssl_handshake_timeout' must be a positive number", level + 1)
  end
end

-- The options each function takes (core.check_options).
local CONNECT = { ssl = true, server_hostname = true, ssl_handshake_timeout = true,
                  limit = true }
local LISTEN = { ssl = true, ssl_handshake_timeout = true, limit = true, backlog = true }
local TCP_LISTEN = { ssl = true, ssl_handshake_timeout = true, limit = true, backlog = true,
                     reuse_port = true }
local OPTIONS = {
  open_connection = CONNECT, open_unix_connection = CONNECT,
  start_server = TCP_LISTEN, start_unix_server = LISTEN,
  getaddrinfo = { family = true, type = true },
  open_udp = { host = true, port = true },
  start_tls = { server_hostname = true, ssl_handshake_timeout = true, server_side = true },
}

local function checkopts(opts, fname, n)
  if opts ~= nil and type(opts) ~= "table" then
    argerror(n, fname, "options table expected, got " .. type(opts))
  end
  core.check_options(opts, fname, OPTIONS[fname], 3)
  opts = opts or {}
  if opts.ssl and not tls().has_tls then
    error(fname .. ": TLS is not available in this build (built without TLS)", 4)
  end
  if opts.ssl == nil or opts.ssl == false then
    if opts.server_hostname ~= nil then
      error(fname .. ": option 'server_hostname' is only meaningful with ssl", 4)
    end
    if opts.ssl_handshake_timeout ~= nil then
      error(fname .. ": option 'ssl_handshake_timeout' is only meaningful with ssl", 4)
    end
  end
  check_tls_opts(opts, fname, 4)
  if opts.limit ~= nil and (math.type(opts.limit) ~= "integer" or opts.limit <= 0) then
    error(fname .. ": option 'limit' must be a positive integer", 4)
  end
  return opts
end

local function is_numeric(host)
  return host:match("^%d+%.%d+%.%d+%.%d+$") ~= nil or host:find(":", 1, true) ~= nil
end

-- Addresses for host: numeric ones as they are, names resolved.
local function addresses(host, port, socktype)
  if is_numeric(host) then return { { addr = host, port = port } } end
  return core.getaddrinfo(host, port, "any", socktype)
end

------------------------------------------------------------------ TLS
local HANDSHAKE_TIMEOUT = 60     -- seconds, as asyncio's ssl_handshake_timeout
local default_context            -- ssl = true: made on first use

local function client_context(ssl, fname)
  if ssl == true then
    default_context = default_context or require("luaio.ssl").create_default_context()
    return default_context
  end
  if tls().is_ssl_context(ssl) then return ssl end
  error(("%s: option 'ssl' must be true or an SSLContext, got %s"):format(
    fname, type(ssl)), 3)
end

local function handshake(w, fname, timeout)
  local _ <close> = require("luaio.timeouts").timeout(timeout)
  w:_tls_handshake(fname)
end

local contexts = setmetatable({}, { __mode = "k" })   -- writer -> its SSLContext

-- Switches w to TLS on ctx (server_side nil: a connection a server
-- accepted is the server side) and waits for the handshake; on failure
-- (SSLError, TimeoutError, cancellation) the socket is closed at once.
local function upgrade(w, ctx, hostname, timeout, fname, server_side)
  w:_tls_wrap(ctx, hostname, fname, server_side)
  local ok, err = pcall(handshake, w, fname, timeout or HANDSHAKE_TIMEOUT)
  if not ok then
    w:_abort()
    error(err, 0)
  end
  contexts[w] = ctx
end

-- The handler of a TLS server: the handshake first; a connection whose
-- handshake fails is closed and the handler never sees it (asyncio
-- logs such failures only in debug mode; we report them to the loop's
-- exception handler in debug mode).
local function tls_handler(handler, ctx, timeout, fname)
  if not tls().is_ssl_context(ctx) then
    error(("%s: option 'ssl' must be an SSLContext with a certificate (load_cert_chain), got %s")
      :format(fname, type(ctx)), 3)
  end
  if not tls().ssl_has_certificate(ctx) then
    error(fname .. ": the server's SSLContext has no certificate (call load_cert_chain)", 3)
  end
  return function(r, w)
    local ok, err = pcall(upgrade, w, ctx, nil, timeout, fname, true)
    if not ok then
      if core.is(err, core.CancelledError) then error(err, 0) end
      local loop = core.get_running_loop()
      if loop:get_debug() then
        loop:call_exception_handler({
          message = fname .. ": TLS handshake with a client failed",
          exception = err,
        })
      end
      return
    end
    return handler(r, w)
  end
end

------------------------------------------------------------------ DNS
--- aio.getaddrinfo(host [, port [, {family = "inet"|"inet6", type = "stream"|"dgram"}]])
function M.getaddrinfo(host, port, opts)
  checkhost(host, "getaddrinfo", 1)
  if port ~= nil then port = checkport(port, "getaddrinfo", 2) end
  if opts ~= nil and type(opts) ~= "table" then
    argerror(3, "getaddrinfo", "options table expected, got " .. type(opts), 3)
  end
  core.check_options(opts, "getaddrinfo", OPTIONS.getaddrinfo, 2)
  opts = opts or {}
  return core.getaddrinfo(host, port, opts.family or "any", opts.type or "any")
end

------------------------------------------------------------------ TCP
--- aio.open_connection(host, port [, opts]) -> reader, writer
function M.open_connection(host, port, opts)
  checkhost(host, "open_connection", 1)
  port = checkport(port, "open_connection", 2)
  opts = checkopts(opts, "open_connection", 3)
  local ctx = opts.ssl and client_context(opts.ssl, "open_connection")
  local last
  for _, a in ipairs(addresses(host, port, "stream")) do
    local ok, r, w = pcall(core.tcp_connect, a.addr, port)
    if ok then
      if opts.limit then r:_set_limit(opts.limit) end
      if ctx then
        local hostname = opts.server_hostname
        if hostname == nil then hostname = host end
        upgrade(w, ctx, hostname, opts.ssl_handshake_timeout, "open_connection", false)
      end
      return r, w
    end
    if not core.is(r, core.OSError) then error(r, 0) end
    last = r
  end
  error(last or core.OSError("open_connection: no address for " .. host), 0)
end

--- aio.start_server(handler, host, port [, opts]) -> server
--- handler(reader, writer) runs as a task per connection; the streams
--- are closed when it ends, however it ends.  host nil:
--- every IPv4 interface; port 0: any free port (server:getsockname()).
--- opts: backlog, limit, reuse_port (SO_REUSEPORT: other sockets, of
--- this process or others, may listen on the same address and port; the
--- kernel spreads the connections over them.  On by default in the
--- worker processes of aio.workers, where the server is also drained on
--- SIGTERM).
function M.start_server(handler, host, port, opts)
  if type(handler) ~= "function" then
    argerror(1, "start_server", "function expected, got " .. type(handler), 3)
  end
  checkhost(host, "start_server", 2, true)
  port = checkport(port, "start_server", 3)
  opts = checkopts(opts, "start_server", 4)
  if opts.ssl then
    handler = tls_handler(handler, opts.ssl, opts.ssl_handshake_timeout, "start_server")
  end
  local ip = host or "0.0.0.0"
  if not is_numeric(ip) then
    local list = core.getaddrinfo(ip, port, "any", "stream")
    ip = list[1].addr
  end
  local worker = core._worker                   -- luaio.workers, in a worker
  local reuse = opts.reuse_port
  if reuse == nil then reuse = worker ~= nil end
  local server = core.tcp_listen(ip, port, opts.backlog, opts.limit, handler, reuse)
  if worker then worker.listening(server) end
  return server
end

------------------------------------------------------------------ unix
--- aio.open_unix_connection(path [, opts]) -> reader, writer
function M.open_unix_connection(path, opts)
  if type(path) ~= "string" then
    argerror(1, "open_unix_connection", "path expected, got " .. type(path), 3)
  end
  opts = checkopts(opts, "open_unix_connection", 2)
  local ctx = opts.ssl and client_context(opts.ssl, "open_unix_connection")
  local r, w = core.pipe_connect(path)
  if opts.limit then r:_set_limit(opts.limit) end
  if ctx then
    upgrade(w, ctx, opts.server_hostname, opts.ssl_handshake_timeout,
            "open_unix_connection", false)
  end
  return r, w
end

--- aio.start_unix_server(handler, path [, opts]) -> server
function M.start_unix_server(handler, path, opts)
  if type(handler) ~= "function" then
    argerror(1, "start_unix_server", "function expected, got " .. type(handler), 3)
  end
  if type(path) ~= "string" then
    argerror(2, "start_unix_server", "path expected, got " .. type(path), 3)
  end
  opts = checkopts(opts, "start_unix_server", 3)
  if opts.ssl then
    handler = tls_handler(handler, opts.ssl, opts.ssl_handshake_timeout, "start_unix_server")
  end
  return core.pipe_listen(path, nil, opts.backlog, opts.limit, handler)
end

------------------------------------------------------------------ UDP
--- aio.open_udp([{host =, port =}]) -> socket (bound when host/port given)
function M.open_udp(opts)
  if opts ~= nil and type(opts) ~= "table" then
    argerror(1, "open_udp", "options table expected, got " .. type(opts), 3)
  end
  core.check_options(opts, "open_udp", OPTIONS.open_udp, 2)
  opts = opts or {}
  local host, port = opts.host, opts.port
  if host == nil and port == nil then return core.udp_open() end
  host = checkhost(host or "0.0.0.0", "open_udp", 1)
  port = port and checkport(port, "open_udp", 1) or 0
  if not is_numeric(host) then
    host = core.getaddrinfo(host, port, "any", "dgram")[1].addr
  end
  return core.udp_open(host, port)
end

------------------------------------------------------------------ methods
local Reader = core.ReaderMethods
local reader_mt = reg["luaio.StreamReader"]

--- reader:lines() -> iterator over lines without their "\n" (io.lines)
function Reader:lines()
  if getmetatable(self) ~= reader_mt then core.bad_self(self, "StreamReader", "lines") end
  return function()
    local line = self:readline()
    if line == nil then return nil end
    if line:sub(-1) == "\n" then return line:sub(1, -2) end
    return line
  end
end

local Writer = core.WriterMethods
local writer_mt = reg["luaio.StreamWriter"]

--- writer:start_tls(ctx [, {server_hostname =, ssl_handshake_timeout =,
--- server_side =}]) upgrades the connection to TLS in place (asyncio
--- 3.11).  The side: a connection a server accepted answers the client's
--- handshake (server_side overrides).  Suspends until the handshake is
--- done; the reader and writer then carry plaintext over TLS.
function Writer:start_tls(ctx, opts)
  if getmetatable(self) ~= writer_mt then core.bad_self(self, "StreamWriter", "start_tls") end
  if not tls().has_tls then
    error("start_tls: TLS is not available in this build (built without TLS)", 2)
  end
  if not tls().is_ssl_context(ctx) then
    argerror(1, "start_tls", "SSLContext expected, got " .. type(ctx), 3)
  end
  if opts ~= nil and type(opts) ~= "table" then
    argerror(2, "start_tls", "options table expected, got " .. type(opts), 3)
  end
  core.check_options(opts, "start_tls", OPTIONS.start_tls, 2)
  opts = opts or {}
  check_tls_opts(opts, "start_tls", 2)
  local side = opts.server_side
  if side ~= nil and type(side) ~= "boolean" then
    error("start_tls: option 'server_side' must be a boolean", 2)
  end
  upgrade(self, ctx, opts.server_hostname, opts.ssl_handshake_timeout, "start_tls", side)
end

-- The SSLObject of get_extra_info("ssl_object"), as Python's.
local SSLObject = {}
SSLObject.__index = SSLObject
SSLObject.__name = "SSLObject"
local function info(self, name, what)
  if getmetatable(self) ~= SSLObject then core.bad_self(self, "SSLObject", name, 3) end
  return self._w:_tls_info(what)
end
function SSLObject:version() return (info(self, "version", "version")) end
function SSLObject:cipher() return (info(self, "cipher", "cipher")) end
function SSLObject:selected_alpn_protocol()
  return (info(self, "selected_alpn_protocol", "alpn"))
end
--- ssl_object:getpeercert([binary]) -> table (binary: DER bytes), nil if none
function SSLObject:getpeercert(binary)
  return (info(self, "getpeercert", binary and "peercert_der" or "peercert"))
end
function SSLObject:__tostring()
  return ("SSLObject (%s side, %s)"):format(self.server_side and "server" or "client",
    self:version() or "handshaking")
end

local ssl_objects = setmetatable({}, { __mode = "k" })
local c_extra = Writer.get_extra_info

--- writer:get_extra_info(name [, default]): "peername", "sockname",
--- and on TLS streams "peercert", "cipher", "ssl_object", "sslcontext".
function Writer:get_extra_info(name, default)
  if getmetatable(self) ~= writer_mt then core.bad_self(self, "StreamWriter", "get_extra_info") end
  if name == "ssl_object" or name == "sslcontext" then
    local side = self:_tls_info("server_side")
    if side == nil then return default end
    if name == "sslcontext" then return contexts[self] end
    local o = ssl_objects[self]
    if not o then
      o = setmetatable({ _w = self, server_side = side,
                         server_hostname = self:_tls_info("server_hostname") }, SSLObject)
      ssl_objects[self] = o
    end
    return o
  end
  return c_extra(self, name, default)
end

local Server = core.ServerMethods
local server_mt = reg["luaio.Server"]
reg["luaio.Server"].__close = function(s) s:close() end
-- (a writer's __close is close() itself, set in runtime/stream.c)

--- server:get_loop()
function Server:get_loop()
  if getmetatable(self) ~= server_mt then core.bad_self(self, "Server", "get_loop") end
  return core.get_running_loop()
end

return M
