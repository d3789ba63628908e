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
-- getaddrinfo.  A cancelled read consumes nothing.
local core = require "luaio.core"

local M = {}

local reg = debug.getregistry()

------------------------------------------------------------------ helpers
-- level 4: raised by a checker called from a public function (the
-- public function's caller is blamed); 3 when raised by it directly.
local function argerror(n, fname, msg, level)
  error(("bad argument #%d to '%s' (%s)"):format(n, fname, msg), level or 4)
end

local function checkhost(host, fname, n, optional)
  if host == nil and optional then return nil end
  if type(host) ~= "string" then
    argerror(n, fname, "host name or address expected, got " .. type(host))
  end
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

local function checkopts(opts, fname, n)
  if opts ~= nil and type(opts) ~= "table" then
    argerror(n, fname, "options table expected, got " .. type(opts))
  end
  opts = opts or {}
  if opts.ssl then
    error(fname .. ": TLS is not available in this build (built without TLS)", 4)
  end
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

------------------------------------------------------------------ DNS
--- aio.getaddrinfo(host [, port [, {family = "inet"|"inet6", type = "stream"|"dgram"}]])
function M.getaddrinfo(host, port, opts)
  checkhost(host, "getaddrinfo", 1)
  if port ~= nil then port = checkport(port, "getaddrinfo", 2) end
  if opts ~= nil and type(opts) ~= "table" then
    argerror(3, "getaddrinfo", "options table expected, got " .. type(opts), 3)
  end
  opts = opts or {}
  return core.getaddrinfo(host, port, opts.family or "any", opts.type or "any")
end

------------------------------------------------------------------ TCP
--- aio.open_connection(host, port [, opts]) -> reader, writer
function M.open_connection(host, port, opts)
  checkhost(host, "open_connection", 1)
  port = checkport(port, "open_connection", 2)
  opts = checkopts(opts, "open_connection", 3)
  local last
  for _, a in ipairs(addresses(host, port, "stream")) do
    local ok, r, w = pcall(core.tcp_connect, a.addr, port)
    if ok then
      if opts.limit then r:_set_limit(opts.limit) end
      return r, w
    end
    if not core.is(r, core.OSError) then error(r, 0) end
    last = r
  end
  error(last or core.OSError("open_connection: no address for " .. host), 0)
end

--- aio.start_server(handler, host, port [, opts]) -> server
--- handler(reader, writer) runs as a task per connection.  host nil:
--- every IPv4 interface; port 0: any free port (server:getsockname()).
--- opts: backlog, limit.
function M.start_server(handler, host, port, opts)
  if type(handler) ~= "function" then
    argerror(1, "start_server", "function expected, got " .. type(handler), 3)
  end
  checkhost(host, "start_server", 2, true)
  port = checkport(port, "start_server", 3)
  opts = checkopts(opts, "start_server", 4)
  local ip = host or "0.0.0.0"
  if not is_numeric(ip) then
    local list = core.getaddrinfo(ip, port, "any", "stream")
    ip = list[1].addr
  end
  return core.tcp_listen(ip, port, opts.backlog, opts.limit, handler)
end

------------------------------------------------------------------ unix
--- aio.open_unix_connection(path [, opts]) -> reader, writer
function M.open_unix_connection(path, opts)
  if type(path) ~= "string" then
    argerror(1, "open_unix_connection", "path expected, got " .. type(path), 3)
  end
  opts = checkopts(opts, "open_unix_connection", 2)
  local r, w = core.pipe_connect(path)
  if opts.limit then r:_set_limit(opts.limit) end
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
  return core.pipe_listen(path, nil, opts.backlog, opts.limit, handler)
end

------------------------------------------------------------------ UDP
--- aio.open_udp([{host =, port =}]) -> socket (bound when host/port given)
function M.open_udp(opts)
  if opts ~= nil and type(opts) ~= "table" then
    argerror(1, "open_udp", "options table expected, got " .. type(opts), 3)
  end
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

--- reader:lines() -> iterator over lines without their "\n" (io.lines)
function Reader:lines()
  return function()
    local line = self:readline()
    if line == nil then return nil end
    if line:sub(-1) == "\n" then return line:sub(1, -2) end
    return line
  end
end

local Server = core.ServerMethods
reg["luaio.Server"].__close = function(s) s:close() end
reg["luaio.StreamWriter"].__close = function(w) w:close() end

--- server:get_loop()
function Server:get_loop() return core.get_running_loop() end

return M
