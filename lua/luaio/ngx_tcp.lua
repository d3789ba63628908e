-- luaio.ngx_tcp: ngx.socket.tcp(), OpenResty's cosocket, on luaio's
-- streams (reached through the `aio` table only).
--
-- Each call suspends the running task, never the loop, and returns
-- OpenResty's values: 1 (or data) on success, nil and its error string
-- otherwise -- "timeout", "closed", the system's error in lower case
-- ("connection refused", "connection reset by peer"), plus the partial
-- data for the reads.  A read that times out keeps the connection open
-- (the bytes that had arrived are the partial result); any other read
-- error closes the reading side; a write error closes the connection.
-- A task cancelled inside a call (aio's cancel, or a timeout scope
-- around it) closes the connection at once -- it is never pooled -- and
-- the CancelledError goes on.
--
-- The bytes a call has taken from the stream but not returned yet wait in
-- sock._pre (receiveuntil reads ahead; a timed-out read hands them over
-- as its partial result); every read takes from there first.
local aio = require "luaio"
local pool = require "luaio.ngx_pool"

local M = {}

local find, sub, concat = string.find, string.sub, table.concat

-- OpenResty's defaults (lua_socket_connect/send/read_timeout,
-- lua_socket_pool_size, lua_socket_keepalive_timeout).
local DEFAULT_TIMEOUT = 60000
local DEFAULT_POOL_SIZE = 30
local DEFAULT_KEEPALIVE = 60000
local CHUNK = 65536

local Sock = {}
Sock.__index = Sock
Sock.__name = "ngx.socket.tcp"
-- A socket collected while connected: its pool slot is given back (later:
-- a finalizer wakes no one).
Sock.__gc = function(self)
  if self._pool then pool.leaked(self._pool) end
end
M.Sock = Sock

------------------------------------------------------------------ helpers
-- (level: 3, the caller of the method that called this; 0 from helpers
-- whose errors the method raises again for its caller)
local function argerror(n, fname, msg, level)
  error(("bad argument #%d to '%s' (%s)"):format(n, fname, msg), level or 3)
end

local function finite(n) return n == n and n ~= math.huge and n ~= -math.huge end

local function checkself(self, fname)
  if getmetatable(self) ~= Sock then
    error(("bad argument #1 to '%s' (ngx.socket.tcp object expected, got %s)")
      :format(fname, self == nil and "no value" or type(self)), 3)
  end
end

local function intask(fname)
  if aio.current_task() == nil then
    error(fname .. ": needs a running task (called outside a task)", 3)
  end
end

-- An aio.OSError as OpenResty words it: the system's message in lower
-- case ("connect: connection refused (127.0.0.1:80)": the system's words
-- between the function's name and the address).
local function os_words(e)
  local msg = tostring(e.message or e.code or ""):gsub("%s*%b()$", "")
  return (msg:match("^[%w_.]+:%s*(.*)$") or msg):lower()
end

-- os_words, and a host name that does not resolve as ngx's resolver
-- says it.
local function oserror(e, host)
  local code = e.code or ""
  if code:match("^EAI_") then
    if code == "EAI_AGAIN" then
      return ("%s could not be resolved (2: Server failure)"):format(host)
    end
    return ("%s could not be resolved (3: Host not found)"):format(host)
  end
  return os_words(e)
end

local function is_cancel(e) return aio.is(e, aio.CancelledError) end

local function secs(ms) return (ms > 0 and ms or DEFAULT_TIMEOUT) / 1000 end

------------------------------------------------------------------ state
-- Drops the connection: close (flushing queued bytes) or abort.
local function shut(self, abort)
  local w = self._w
  if w == nil then return end
  self._r, self._w, self._pre, self._tls = nil, nil, nil, nil
  if abort then pcall(w._abort, w) else pcall(w.close, w) end
  local p = self._pool
  self._pool = nil
  if p then pool.release(p) end
end

-- Cancellation inside a call: the connection goes, the error goes on.
local function cancelled(self, e)
  shut(self, true)
  error(e, 0)
end

-- Everything read and not returned: _pre and what the stream holds.
local function take_all(self)
  local pre, r = self._pre or "", self._r
  self._pre = nil
  if r and r:_buffered() > 0 then
    local ok, data = pcall(r.read, r, r:_buffered())
    if ok and data then pre = pre .. data end
  end
  return pre
end

-- The end of a failed read: nil, err, partial.  A timeout leaves the
-- connection open (and marks it unfit for the pool); EOF and errors close
-- the reading side.
local function read_failed(self, e)
  if is_cancel(e) then cancelled(self, e) end
  if aio.is(e, aio.TimeoutError) then
    self._dubious = true
    return nil, "timeout", take_all(self)
  end
  local partial
  if aio.is(e, aio.IncompleteReadError) then
    partial = (self._pre or "") .. (e.partial or "")
    self._pre = nil
    partial = partial .. take_all(self)
    e = "closed"
  elseif e == "closed" then
    partial = take_all(self)
  elseif aio.is(e, aio.OSError) then
    partial = take_all(self)
    e = oserror(e)
  else
    error(e, 0)
  end
  self._rclosed = true
  return nil, e, partial
end

-- Runs fn(cm, self, ...) as a read under the read timeout (cm: its scope).
local function timed_read(self, fname, fn, ...)
  if self._w == nil or self._rclosed then return nil, "closed" end
  if self._reading then return nil, "socket busy reading" end
  intask(fname)
  self._reading = true
  local ok, a, b = pcall(aio.timeout, secs(self._rt), fn, self, ...)
  self._reading = false
  if ok then
    if a == nil and b ~= nil then return read_failed(self, b) end
    return a
  end
  return read_failed(self, a)
end

------------------------------------------------------------------ reads
local function strip_cr(s)
  if find(s, "\r", 1, true) then s = s:gsub("\r", "") end
  return s
end

-- The line in _pre, if it holds a whole one.
local function pre_line(self)
  local pre = self._pre
  if pre == nil then return nil end
  local i = find(pre, "\n", 1, true)
  if i == nil then return nil end
  self._pre = i < #pre and sub(pre, i + 1) or nil
  return strip_cr(sub(pre, 1, i - 1))
end

local function read_line(_, self)
  local r = self._r
  while true do
    local line = pre_line(self)
    if line then return line end
    local ok, data = pcall(r.readuntil, r, "\n")
    if ok then
      if self._pre == nil then return strip_cr(sub(data, 1, -2)) end
      self._pre = self._pre .. data
    elseif aio.is(data, aio.LimitOverrunError) then
      -- longer than the stream's limit: take what it holds, go on
      self._pre = (self._pre or "") .. r:read(r:_buffered())
    else
      error(data, 0)
    end
  end
end

local function read_all(_, self)
  local data = self._r:read()
  local pre = self._pre
  self._pre = nil
  if pre then return pre .. data end
  return data
end

local function read_bytes(_, self, n)
  local pre = self._pre
  if pre == nil then return self._r:readexactly(n) end
  if #pre >= n then
    self._pre = #pre > n and sub(pre, n + 1) or nil
    return sub(pre, 1, n)
  end
  local rest = self._r:readexactly(n - #pre)
  self._pre = nil
  return pre .. rest
end

local function read_any(_, self, max)
  local pre = self._pre
  if pre then
    self._pre = #pre > max and sub(pre, max + 1) or nil
    return sub(pre, 1, max)
  end
  local data = self._r:read(max)
  if data == nil then return nil, "closed" end
  return data
end

--- sock:receive([pattern]) -> data | nil, err, partial
--- pattern: "*l" (the default: a line, without "\n" and any "\r"), "*a"
--- (everything up to EOF), or a number of bytes
function Sock:receive(pat)
  checkself(self, "receive")
  if pat == nil or pat == "*l" then
    return timed_read(self, "receive", read_line)
  end
  if pat == "*a" then
    return timed_read(self, "receive", read_all)
  end
  local n = math.tointeger(tonumber(pat))
  if type(pat) == "number" or (type(pat) == "string" and n) then
    if n == nil then
      if not finite(pat) then argerror(1, "receive", "bad number argument") end
      n = math.floor(pat)
    end
    if n < 0 then argerror(1, "receive", "bad number argument") end
    if n == 0 then
      if self._w == nil or self._rclosed then return nil, "closed" end
      return ""
    end
    -- the bytes are there already: no suspension, no timer to arm
    local r = self._r
    if r and self._pre == nil and not self._rclosed and not self._reading
        and r:_buffered() >= n then
      return r:readexactly(n)
    end
    return timed_read(self, "receive", read_bytes, n)
  end
  if type(pat) == "string" then
    argerror(1, "receive", "bad pattern argument: " .. pat)
  end
  argerror(1, "receive", "bad argument")
end

--- sock:receiveany(max) -> up to max bytes as soon as any have come
function Sock:receiveany(max)
  checkself(self, "receiveany")
  local m = tonumber(max)
  if m == nil or not finite(m) or m < 1 then argerror(1, "receiveany", "bad max argument") end
  local n = math.floor(m)
  return timed_read(self, "receiveany", read_any, n)
end

-- receiveuntil's search: moves the bytes that surely precede pat from
-- _pre to st.acc (a list, st.n bytes); true once pat is found and taken.
local function scan(self, st, pat)
  local pre = self._pre
  if pre == nil then return false end
  local i = find(pre, pat, 1, true)
  local keep
  if i then
    st.acc[#st.acc + 1] = sub(pre, 1, i - 1)
    if st.inclusive then st.acc[#st.acc + 1] = pat end
    st.n = st.n + i - 1 + (st.inclusive and #pat or 0)
    keep = sub(pre, i + #pat)
  else
    local safe = #pre - #pat + 1
    if safe <= 0 then return false end
    st.acc[#st.acc + 1] = sub(pre, 1, safe)
    st.n = st.n + safe
    keep = sub(pre, safe + 1)
  end
  self._pre = keep ~= "" and keep or nil
  return i ~= nil
end

-- The first size bytes of st.acc (all of them when size is nil).
local function take_acc(st, size)
  local all = concat(st.acc)
  if size == nil or size >= #all then
    st.acc, st.n = {}, 0
    return all
  end
  st.acc, st.n = { sub(all, size + 1) }, #all - size
  return sub(all, 1, size)
end

local function read_until(_, self, st, pat, size)
  while true do
    if st.found then
      if st.n == 0 then
        st.found = false
        if size then return nil end
        return ""
      end
      local data = take_acc(st, size)
      if size == nil then st.found = false end
      return data
    end
    if size and st.n >= size then return take_acc(st, size) end
    if scan(self, st, pat) then
      st.found = true
    else
      local data = self._r:read(CHUNK)
      if data == nil then error("closed", 0) end
      self._pre = (self._pre or "") .. data
    end
  end
end

--- sock:receiveuntil(pattern [, {inclusive = bool}]) -> iterator
--- iterator([size]) -> the data before the next pattern (with it when
--- inclusive); with size, that data in pieces of at most size bytes, then
--- nil once it is all given
function Sock:receiveuntil(pat, opts)
  checkself(self, "receiveuntil")
  if type(pat) ~= "string" and type(pat) ~= "number" then
    argerror(1, "receiveuntil", "string expected, got " .. (pat == nil and "no value" or type(pat)))
  end
  pat = tostring(pat)
  local inclusive = false
  if opts ~= nil then
    if type(opts) ~= "table" then
      argerror(2, "receiveuntil", "table expected, got " .. type(opts))
    end
    local v = opts.inclusive
    if v ~= nil and type(v) ~= "boolean" then
      error(("bad \"inclusive\" option value type: %s"):format(type(v)), 2)
    end
    inclusive = v == true
  end
  if pat == "" then return nil, "pattern is empty" end
  local st = { acc = {}, n = 0, inclusive = inclusive, found = false }
  return function(size)
    if size ~= nil then
      local n = math.tointeger(tonumber(size))
      if n == nil or n < 0 then argerror(1, "receiveuntil", "bad size argument") end
      size = n > 0 and n or nil
    end
    local data, err, partial = timed_read(self, "receiveuntil", read_until, st, pat, size)
    if data == nil and err ~= nil then
      if #st.acc > 0 then partial = take_acc(st) .. (partial or "") end
      st.found = false
    end
    return data, err, partial
  end
end

------------------------------------------------------------------ send
local function numstr(v)
  if math.type(v) == "float" and v == math.floor(v) and v > -2^53 and v < 2^53 then
    return ("%d"):format(v)
  end
  if math.type(v) == "float" then return ("%.14g"):format(v) end
  return tostring(v)
end

local function flatten(t, out, seen)
  local max = 0
  for k in pairs(t) do
    if math.type(k) == "integer" and k >= 1 then
      if k > max then max = k end
    elseif type(k) == "number" and k >= 1 and k == math.floor(k) then
      if k > max then max = math.tointeger(k) end
    else
      argerror(1, "send", "non-array table found", 0)
    end
  end
  for i = 1, max do
    local v = t[i]
    local tv = type(v)
    if tv == "string" then out[#out + 1] = v
    elseif tv == "number" then out[#out + 1] = numstr(v)
    elseif tv == "table" then
      if seen[v] then argerror(1, "send", "table nested in itself", 0) end
      seen[v] = true
      flatten(v, out, seen)
      seen[v] = nil
    else
      argerror(1, "send", "bad data type " .. tv .. " found", 0)
    end
  end
end

local function tostr(data)
  local t = type(data)
  if t == "string" then return data end
  if t == "number" then return numstr(data) end
  if t == "nil" or t == "boolean" then return tostring(data) end
  if t == "table" then
    local out = {}
    flatten(data, out, { [data] = true })
    return concat(out)
  end
  argerror(1, "send", "string, number, boolean, nil, or array table expected, got " .. t, 0)
end

local function drain(_, w) w:drain() end

--- sock:send(data) -> bytes sent | nil, err
--- data: a string, a number, or an array of them (nested arrays too);
--- returns once the system has taken every byte (the send timeout
--- applies)
function Sock:send(data)
  checkself(self, "send")
  local ok0, s = pcall(tostr, data)
  if not ok0 then error(s, 2) end
  local w = self._w
  if w == nil then return nil, "closed" end
  if #s == 0 then return 0 end
  if self._writing then return nil, "socket busy writing" end
  local ok, e = pcall(w.write, w, s)
  if ok and w:transport_buffered() > 0 then
    intask("send")
    self._writing = true
    ok, e = pcall(aio.timeout, secs(self._st), drain, w)
    self._writing = false
  end
  if ok then return #s end
  if is_cancel(e) then cancelled(self, e) end
  if aio.is(e, aio.TimeoutError) then
    self._dubious = true
    return nil, "timeout"
  end
  if not aio.is(e, aio.OSError) then error(e, 0) end
  shut(self, true)
  return nil, oserror(e)
end

------------------------------------------------------------------ connect
local function open(host, port)
  if port == nil then
    return aio.open_unix_connection(sub(host, 6))
  end
  return aio.open_connection(host, port)
end

-- Takes an idle connection of p or a slot, then connects.
local function connect_in(_, p, host, port)
  if p then
    local entry, err = pool.slot(p)
    if err then return nil, err end
    if entry then return entry end
  end
  local ok, r, w = pcall(open, host, port)
  if not ok then
    if p then pool.release(p) end
    error(r, 0)
  end
  return { r = r, w = w, reused = -1 }
end

local function parse_opts(opts)
  local size, backlog, key = nil, nil, nil
  local v = opts.pool_size
  if type(v) == "number" then
    size = math.floor(v)
    if size <= 0 then argerror(3, "connect", ("bad \"pool_size\" option value: %d"):format(size), 4) end
  elseif v ~= nil then
    argerror(3, "connect", "bad \"pool_size\" option type: " .. type(v), 4)
  end
  v = opts.backlog
  if type(v) == "number" then
    backlog = math.floor(v)
    if backlog < 0 then argerror(3, "connect", ("bad \"backlog\" option value: %d"):format(backlog), 4) end
    size = size or DEFAULT_POOL_SIZE
  end
  v = opts.pool
  if type(v) == "number" or type(v) == "string" then
    key = tostring(v)
  elseif v ~= nil then
    argerror(3, "connect", "bad \"pool\" option type: " .. type(v), 4)
  end
  return size, backlog, key
end

--- sock:connect(host, port [, opts]) / sock:connect("unix:/path" [, opts])
--- -> 1 | nil, err.  opts: pool (the pool's name), pool_size, backlog.
function Sock:connect(host, port, opts)
  checkself(self, "connect")
  if type(host) ~= "string" then
    argerror(1, "connect", "string expected, got " .. (host == nil and "no value" or type(host)))
  end
  if type(port) == "table" and opts == nil then port, opts = nil, port end
  local size, backlog, key
  if type(opts) == "table" then size, backlog, key = parse_opts(opts) end
  if type(port) == "number" or (type(port) == "string" and tonumber(port)) then
    port = math.floor(tonumber(port))
    if port < 0 or port > 65535 then return nil, ("bad port number: %d"):format(port) end
    key = key or (host .. ":" .. port)
  elseif host:sub(1, 5):lower() == "unix:" then
    port = nil
    key = key or host
  else
    return nil, "missing the port number"
  end
  if host:find("\0", 1, true) then return nil, "bad address" end
  intask("connect")
  if self._w then shut(self) end
  self._rclosed, self._dubious, self._pre = false, false, nil
  local p = pool.get(key)
  if p == nil and size then p = pool.create(key, size, backlog) end
  local ok, entry, err = pcall(aio.timeout, secs(self._ct), connect_in, p, host, port)
  if not ok then
    if is_cancel(entry) then error(entry, 0) end
    if aio.is(entry, aio.TimeoutError) then return nil, "timeout" end
    if aio.is(entry, aio.OSError) then return nil, oserror(entry, host) end
    error(entry, 0)
  end
  if entry == nil then return nil, err end
  self._r, self._w, self._key, self._pool = entry.r, entry.w, key, p
  self._reused = entry.reused + 1
  self._tls = entry.tls
  -- each send returns once the system has taken its bytes
  entry.w:set_write_buffer_limits(0)
  return 1
end

------------------------------------------------------------------ the rest
--- sock:settimeout(ms): the connect, send and read timeouts (0: 60 s)
function Sock:settimeout(ms)
  checkself(self, "settimeout")
  local t = math.floor(tonumber(ms) or 0)
  if t < 0 or t >= 2^31 then error("bad timeout value", 2) end
  self._ct, self._st, self._rt = t, t, t
end

--- sock:settimeouts(connect_ms, send_ms, read_ms)
function Sock:settimeouts(c, s, r)
  checkself(self, "settimeouts")
  local t = { c, s, r }
  for i = 1, 3 do
    t[i] = math.floor(tonumber(t[i]) or 0)
    if t[i] < 0 or t[i] >= 2^31 then error("bad timeout value", 2) end
  end
  self._ct, self._st, self._rt = t[1], t[2], t[3]
end

--- sock:close() -> 1 | nil, "closed"
function Sock:close()
  checkself(self, "close")
  if self._w == nil then return nil, "closed" end
  if self._reading then return nil, "socket busy reading" end
  shut(self)
  return 1
end

--- sock:getreusedtimes() -> how many times the connection came from the pool
function Sock:getreusedtimes()
  checkself(self, "getreusedtimes")
  if self._w == nil then return nil, "closed" end
  return self._reused
end

local function check_int(v, n, fname)
  if v == nil then return nil end
  local i = math.tointeger(tonumber(v))
  if type(v) ~= "number" and not (type(v) == "string" and i) then
    argerror(n, fname, "number expected, got " .. type(v), 4)
  end
  if i == nil and not finite(v) then argerror(n, fname, "number has no integer representation", 4) end
  return i or math.floor(v)
end

--- sock:setkeepalive([idle_ms [, pool_size]]) -> 1 | nil, err
--- puts the connection in its pool; one with unread data, a timed-out
--- call or a closed side behind it is closed instead
function Sock:setkeepalive(idle_ms, size)
  checkself(self, "setkeepalive")
  idle_ms = check_int(idle_ms, 1, "setkeepalive") or DEFAULT_KEEPALIVE
  size = check_int(size, 2, "setkeepalive") or DEFAULT_POOL_SIZE
  local r, w = self._r, self._w
  if w == nil then return nil, "closed" end
  if self._reading then return nil, "socket busy reading" end
  if self._writing then return nil, "socket busy writing" end
  if self._rclosed or r:at_eof() or w:is_closing() then
    shut(self)
    return nil, "closed"
  end
  if self._pre or r:_buffered() > 0 then
    shut(self, true)
    return nil, "unread data in buffer"
  end
  if self._dubious then
    shut(self, true)
    return nil, "invalid connection"
  end
  local p = pool.get(self._key)
  if p == nil then
    if size <= 0 then
      argerror(2, "setkeepalive", ("bad \"pool_size\" option value: %d"):format(size))
    end
    p = pool.create(self._key, size)
  end
  if self._pool ~= p then
    if self._pool then pool.release(self._pool) end
    p.connections = p.connections + 1
  end
  local tls = self._tls
  self._r, self._w, self._pool, self._tls = nil, nil, nil, nil
  pool.put(p, r, w, self._reused, idle_ms, tls)
  return 1
end

-- TLS contexts for sslhandshake: verifying (aio.ngx.ssl_context, else
-- the system's trust store) and not (OpenResty's default).
local contexts = {}

local function context(verify)
  -- (the luaio.ngx that loaded this file: package.loaded may hold
  -- another instance, or none, under a test runner's module insulation)
  local ngx_mod = M._ngx or package.loaded["luaio.ngx"]
  if verify and ngx_mod and ngx_mod.ssl_context then return ngx_mod.ssl_context end
  local key = verify and "verify" or "noverify"
  if not contexts[key] then
    local ctx = aio.ssl.create_default_context()
    if not verify then ctx.verify = false end
    contexts[key] = ctx
  end
  return contexts[key]
end

local function handshake(_, w, ctx, name)
  w:start_tls(ctx, { server_hostname = name or "" })
end

local function ssl_error(e)
  if e.verify_message == "hostname mismatch" or e.verify_message == "IP address mismatch" then
    return "certificate host mismatch"
  end
  if e.verify_code then return ("%d: %s"):format(e.verify_code, e.verify_message) end
  return "handshake failed"
end

--- sock:sslhandshake([reused_session [, server_name [, verify]]])
--- -> session (true when reused_session is false) | nil, err
function Sock:sslhandshake(reused, name, verify)
  checkself(self, "sslhandshake")
  if name ~= nil and type(name) ~= "string" then
    argerror(2, "sslhandshake", "string expected, got " .. type(name))
  end
  local w = self._w
  if w == nil then return nil, "closed" end
  intask("sslhandshake")
  if self._tls then return reused == false and true or self._tls end
  local ctx = context(verify == true)
  local ok, e = pcall(aio.timeout, secs(self._ct), handshake, w, ctx, name)
  if not ok then
    if is_cancel(e) then cancelled(self, e) end
    if aio.is(e, aio.TimeoutError) then
      shut(self, true)
      return nil, "timeout"
    end
    if not aio.is(e, aio.OSError) then error(e, 0) end
    shut(self, true)
    if aio.is(e, aio.SSLError) then return nil, ssl_error(e) end
    return nil, oserror(e)
  end
  self._tls = setmetatable({}, { __name = "ngx.ssl.session",
    __tostring = function() return "ssl session (not resumable)" end })
  if reused == false then return true end
  return self._tls
end

--- ngx.socket.tcp() -> a new, unconnected cosocket
function M.tcp()
  return setmetatable({ _ct = 0, _st = 0, _rt = 0, _reused = 0,
                        _reading = false, _writing = false }, Sock)
end

--- ngx.socket.connect(host, port [, opts]) -> a connected cosocket | nil, err
function M.connect(...)
  local sock = M.tcp()
  local ok, err = sock:connect(...)
  if ok then return sock end
  return nil, err
end

-- (what ngx_udp shares: the task check and send's data rules)
M._intask, M._tostr, M._os_words = intask, tostr, os_words

return M
