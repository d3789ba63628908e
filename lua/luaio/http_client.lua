-- luaio.http_client: the HTTP/1.1 client of aio.http -- request(method,
-- url [, opts]) and its shorthands, Client([opts]) sessions with a
-- keep-alive pool, redirects, TLS, streamed bodies both ways, gzip and
-- deflate (lua-zlib, when installed), JSON (lua-cjson, when installed),
-- http_proxy / https_proxy / no_proxy as curl reads them.
--
-- The pool: a client holds one pool per scheme://host:port (or per proxy,
-- or per CONNECT tunnel), each a stack of idle connections (the most
-- recently used on top) and a count of the connections it has open, busy
-- or idle.  A connection is counted from the moment its slot is taken
-- (before the connect) to the moment it is closed; max_per_host and
-- max_total bound those counts; a request that finds no slot parks on the
-- client's wait list (any change wakes every waiter: each re-checks).
-- When max_total is reached an idle connection of another host is closed
-- to make room.  A connection goes back to the pool only once its
-- response has been read to the end, the server kept it alive and no
-- byte beyond the response came; anything else closes it.  An idle
-- connection is dropped when it has expired (idle_timeout), when the
-- server closed it (its EOF was read while it sat idle) or when it holds
-- unexpected bytes; a timer closes expired ones.  A pooled connection
-- found closed while the request is sent or before the first byte of the
-- answer (the server timed it out just then) is retried once on a new
-- connection, for GET HEAD PUT DELETE OPTIONS with a body that can be
-- sent again.
--
-- Deadlines: opts.timeout is one deadline (aio.timeout_at) over the wait
-- for a pool slot, DNS, connect, TLS, sending the request and the response
-- head, across redirects: TimeoutError "GET <url>: no response within
-- <t> s (timeout)".  opts.read_timeout bounds each read from the socket
-- (head and body): TimeoutError "GET <url>: no data for <t> s
-- (read_timeout)".
--
-- Suspension points and cancellation: the wait for a pool slot (leaves
-- the wait list), the connect and TLS handshake (the socket is closed and
-- its slot given back), writing the request, reading the head, every
-- body read (res:read, lines, body, json) and the read of a redirect's
-- small body (discarded so that its connection can be reused).  Whatever
-- stops a request or a body read before the response's end --
-- cancellation, a timeout, an error -- closes its connection at once: a
-- connection is never put back half-read, and its slot is freed.
local aio = require "luaio"
local core = require "luaio.core"
local hh = require "luaio.http_headers"
local pools = require "luaio.http_pool"

-- (Streams, timeouts and TLS through the public API: a protocol does not
-- reach into the stream modules.)
local timeouts = { timeout = aio.timeout, timeout_at = aio.timeout_at }

local M = {}

local HTTPError = core.HTTPError
M.HTTPError = HTTPError

local function optional(name)
  local ok, mod = pcall(require, name)
  if ok then return mod end
  return nil
end
local cjson = optional("cjson")
local zlib = optional("zlib")
M.HAS_JSON = cjson ~= nil
M.HAS_ZLIB = zlib ~= nil

local CHUNK = 65536                -- bytes asked for per socket read
local EXPECT_WAIT = 1              -- s to wait for "100 Continue"
local USER_AGENT = "luaio/0.1"
local IDEMPOTENT = { GET = true, HEAD = true, PUT = true, DELETE = true,
                     OPTIONS = true }
local KEEP_METHOD = { [307] = true, [308] = true }
local REDIRECT = { [301] = true, [302] = true, [303] = true, [307] = true,
                   [308] = true }

local fmt = string.format
local is = core.is

------------------------------------------------------------------ errors
local function who(req) return req.method .. " " .. req.url end

local function fail(req, what, fields)
  error(HTTPError(who(req) .. ": " .. what, fields), 0)
end

------------------------------------------------------------------ URLs
local function authority(u)
  local host = u.host:find(":", 1, true) and "[" .. u.host .. "]" or u.host
  if u.port == hh.DEFAULT_PORT[u.scheme] then return host end
  return host .. ":" .. u.port
end

-- RFC 3986 5.2.4: "." and ".." segments out of a path.
local function remove_dots(path)
  local out = {}
  for seg in (path .. "/"):gmatch("([^/]*)/") do
    if seg == ".." then
      if #out > 1 then out[#out] = nil end
    elseif seg ~= "." then
      out[#out + 1] = seg
    end
  end
  local last = path:match("[^/]*$")
  if last == "." or last == ".." then out[#out + 1] = "" end
  local s = table.concat(out, "/")
  if s:sub(1, 1) ~= "/" then s = "/" .. s end
  return s
end

--- resolve(base, ref) -> absolute URL of ref (a Location) against base
function M.resolve(base, ref)
  if ref:match("^%a[%w+.-]*://") then return ref end
  local u = assert(hh.parse_url(base))
  local origin = u.scheme .. "://" .. authority(u)
  if ref:sub(1, 2) == "//" then return u.scheme .. ":" .. ref end
  if ref == "" then return origin .. u.target end
  local path, query = ref:match("^([^?#]*)(.*)$")
  local bpath = u.target:match("^[^?]*")
  if path == "" then return origin .. bpath .. query end
  if path:sub(1, 1) ~= "/" then path = bpath:gsub("[^/]*$", "") .. path end
  return origin .. remove_dots(path) .. query
end

------------------------------------------------------------------ base64
local B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
local function base64(s)
  return (s:gsub("..?.?", function(c)
    local a, b, d = c:byte(1, 3)
    local n = a * 65536 + (b or 0) * 256 + (d or 0)
    local out = {}
    for i = 1, 4 do
      local k = (n >> (6 * (4 - i))) & 63
      out[i] = B64:sub(k + 1, k + 1)
    end
    if not b then out[3], out[4] = "=", "=" elseif not d then out[4] = "=" end
    return table.concat(out)
  end))
end

------------------------------------------------------------------ proxies
-- curl's rules: http_proxy (lower case only), HTTPS_PROXY or https_proxy,
-- ALL_PROXY or all_proxy; NO_PROXY or no_proxy: "*" or a comma-separated
-- list of host names (each matching itself and its subdomains; a leading
-- dot is ignored) and addresses.
local function env_proxies()
  local g = os.getenv
  return {
    http = g("http_proxy") or g("ALL_PROXY") or g("all_proxy"),
    https = g("HTTPS_PROXY") or g("https_proxy") or g("ALL_PROXY") or g("all_proxy"),
    no_proxy = g("NO_PROXY") or g("no_proxy"),
  }
end

local function bypass(no_proxy, host)
  if not no_proxy or no_proxy == "" then return false end
  for entry in no_proxy:gmatch("[^,%s]+") do
    if entry == "*" then return true end
    entry = entry:gsub("^%.", ""):gsub(":%d+$", ""):gsub("^%[(.*)%]$", "%1"):lower()
    if host == entry or host:sub(-#entry - 1) == "." .. entry then return true end
  end
  return false
end

-- The proxy URL (parsed) for u, or nil.
local function proxy_for(proxies, u)
  if not proxies then return nil end
  local p = proxies[u.scheme]
  if not p or p == "" or bypass(proxies.no_proxy, u.host) then return nil end
  if not p:find("://", 1, true) then p = "http://" .. p end
  local pu, err = hh.parse_url(p)
  if not pu or pu.scheme ~= "http" then
    error(HTTPError(fmt("proxy '%s' not usable (%s)", p,
      err or "only http:// proxies are supported")), 0)
  end
  return pu
end

------------------------------------------------------------------ the pool
local Client = {}
Client.__index = Client
Client.__name = "Client"

local now, forget, abort = pools.now, pools.forget, pools.abort
local close_idle, release, acquire = pools.close_idle, pools.release, pools.acquire

------------------------------------------------------------------ parsing
-- The next parser event without reading: "head", head | "done", body |
-- "body", bytes | nil (more data needed).
local function step(c, p, req)
  local data = c.data
  if data == nil then return nil end
  local ev, pos, x, y = p:execute(data, c.pos)
  if pos == nil or pos > #data then c.data = nil else c.pos = pos end
  if ev == "more" then
    if x ~= "" then return "body", x end
    return nil
  elseif ev == "head" then
    if c.data == nil then c.data, c.pos = "", 1 end   -- (lets it finish)
    return "head", x
  elseif ev == "done" then
    return "done", x
  elseif ev == "upgrade" then
    c.data = c.data or ""           -- what follows is not HTTP: not reusable
    return "done", ""
  end
  fail(req, fmt("invalid response (%s: %s)", x, y), { code = x })
end

local function read_some(r) return r:read(CHUNK) end
local function read_timed(_, r) return r:read(CHUNK) end

-- Reads more bytes from c's socket: nil at EOF.
local function fill(c, req)
  local rt = req.read_timeout
  if not rt then return read_some(c.r) end
  local ok, data = pcall(timeouts.timeout, rt, read_timed, c.r)
  if ok then return data end
  if is(data, core.TimeoutError) then
    error(core.TimeoutError(fmt("%s: no data for %g s (read_timeout)", who(req), rt)), 0)
  end
  error(data, 0)
end

-- The next event, reading as needed; "eof" when the connection ended
-- where a message may end.
local function pull(c, p, req)
  while true do
    local ev, x = step(c, p, req)
    if ev then return ev, x end
    local data = fill(c, req)
    if data == nil then
      local fev, body, code, reason = p:finish()
      if fev == "done" then return "done", body end
      if fev == "error" then
        if not c.got then
          fail(req, "the server closed the connection without responding", { stale = true })
        end
        fail(req, fmt("the connection closed before the response was complete (%s)",
          reason), { code = code })
      end
      if not c.got then
        fail(req, "the server closed the connection without responding", { stale = true })
      end
      return "eof"
    end
    c.got = true
    c.data, c.pos = data, 1
  end
end

-- The head of the next message (1xx included; their end is consumed).
local function read_head(c, p, req)
  while true do
    local ev, head = pull(c, p, req)
    if ev == "head" then
      if head.status >= 100 and head.status < 200 and head.status ~= 101 then
        pull(c, p, req)             -- its "done"
      end
      return head
    end
    if ev == "eof" then
      fail(req, "the connection closed before the response was complete")
    end
  end
end

------------------------------------------------------------------ decoding
local function inflater(encoding)
  local stream = zlib.inflate()
  if encoding ~= "deflate" then return stream end
  local first = true
  return function(data)               -- "deflate": zlib-wrapped, or raw
    if first then
      first = false
      local ok, out = pcall(stream, data)
      if ok then return out end
      stream = zlib.inflate(-15)
    end
    return stream(data)
  end
end

------------------------------------------------------------------ responses
local Response = {}
Response.__index = Response
Response.__name = "Response"

-- The end of the body: the connection goes back to the pool.
local function finished(res)
  res._done = true
  local c = res._conn
  if c then
    res._conn = nil
    release(c, res._keep)
  end
end

-- Gives the connection up (an error, cancellation, close before the end).
local function give_up(res, err)
  res._done = true
  res._err = err
  local c = res._conn
  if c then
    res._conn = nil
    abort(c)
  end
end

local function pull_body(res)
  while true do
    local ev, x = pull(res._conn, res._p, res._req)
    if ev == "body" then return x end
    if ev == "done" or ev == "eof" then
      finished(res)
      if x and x ~= "" then return x end
      return nil
    end
    if ev == "head" then
      fail(res._req, "unexpected second response head")
    end
  end
end

-- The next raw body bytes, nil at the end.
local function next_raw(res)
  local q = res._raw
  if q and #q > 0 then return table.remove(q, 1) end
  if res._err then error(res._err, 0) end
  if res._done then return nil end
  local ok, x = pcall(pull_body, res)
  if ok then return x end
  give_up(res, x)
  error(x, 0)
end

-- The next decoded body bytes (never ""), nil at the end.
local function next_chunk(res)
  while true do
    local raw = next_raw(res)
    if raw == nil then return nil end
    local dec = res._decode
    if dec then
      local ok, out = pcall(dec, raw)
      if not ok then
        local why = tostring(out):gsub(" at lua_zlib%.c.*$", "")
        local err = HTTPError(fmt("%s: cannot decode the body (%s)", who(res._req), why))
        give_up(res, err)
        error(err, 0)
      end
      raw = out
    end
    if raw ~= "" then return raw end
  end
end

local function check_res(res, name)
  if getmetatable(res) ~= Response then core.bad_self(res, "Response", name, 3) end
end

--- res:read([n]) -> up to n bytes of the body as soon as there are some,
--- nil at its end; read() -> the rest of the body ("" if none is left)
function Response:read(n)
  check_res(self, "read")
  if n == nil or n < 0 then
    local parts = { self._buf }
    self._buf = nil
    for chunk in next_chunk, self do parts[#parts + 1] = chunk end
    return table.concat(parts)
  end
  if n == 0 then return "" end
  local buf = self._buf
  if buf == nil then
    buf = next_chunk(self)
    if buf == nil then return nil end
  end
  if #buf <= n then
    self._buf = nil
    return buf
  end
  self._buf = buf:sub(n + 1)
  return buf:sub(1, n)
end

--- res:lines() -> iterator over the body's lines without "\n" (or "\r\n")
function Response:lines()
  check_res(self, "lines")
  return function()
    local buf = self._buf or ""
    local init = 1
    while true do
      local i = buf:find("\n", init, true)
      if i then
        self._buf = i < #buf and buf:sub(i + 1) or nil
        return (buf:sub(1, i - 1):gsub("\r$", ""))
      end
      local more = next_chunk(self)
      if more == nil then
        self._buf = nil
        if buf == "" then return nil end
        return buf
      end
      init = #buf + 1
      buf = buf .. more
    end
  end
end

--- res:body() -> the (rest of the) body, kept: body() again returns it
function Response:body()
  check_res(self, "body")
  if self._body == nil then self._body = self:read() end
  return self._body
end

--- res:json() -> the body decoded by lua-cjson
function Response:json()
  check_res(self, "json")
  if not cjson then error("json: lua-cjson is not installed", 2) end
  local ok, v = pcall(cjson.decode, self:body())
  if not ok then
    error(HTTPError(fmt("%s: the body is not JSON (%s)", who(self._req), v)), 0)
  end
  return v
end

--- res:close(): the body is dropped; unless it was read to the end the
--- connection is closed (never reused half-read)
function Response:close()
  check_res(self, "close")
  if not self._done then give_up(self, nil) end
  self._buf, self._raw = nil, nil
end
Response.__close = Response.close

function Response:__gc()
  if self._conn then pcall(give_up, self, nil) end
end

function Response:__tostring()
  return fmt("Response(%d %s, %s)", self.status, self.reason, self.url)
end

------------------------------------------------------------------ requests
local function is_callable(f)
  if type(f) == "function" then return true end
  local mt = getmetatable(f)
  return mt ~= nil and type(mt) == "table" and mt.__call ~= nil
end

-- The request's connection target and pool key.
local function route(req)
  local u = req.u
  local px = proxy_for(req.proxies, u)
  req.proxy = px
  if px and u.scheme == "http" then
    req.target = u.scheme .. "://" .. authority(u) .. u.target
    req.key = "proxy " .. px.host .. ":" .. px.port
  elseif px then
    req.target = u.target
    req.key = fmt("tunnel %s:%d %s:%d", px.host, px.port, u.host, u.port)
  else
    req.target = u.target
    req.key = u.scheme .. "://" .. u.host .. ":" .. u.port
  end
end

-- The request's headers for its current URL and body.
local function build_head(req)
  local user, u, h = req.user_headers, req.u, hh.new()
  if not user:has("host") then h:_push("Host", authority(u)) end
  for name, value in user:each() do h:_push(name, value) end
  for name, value in req.defaults:each() do
    if not user:has(name) then h:_push(name, value) end
  end
  if u.userinfo and not h:has("authorization") then
    h:set("Authorization", "Basic " .. base64(hh.percent_decode(u.userinfo)))
  end
  if req.proxy and u.scheme == "http" and req.proxy.userinfo then
    h:set("Proxy-Authorization", "Basic " .. base64(hh.percent_decode(req.proxy.userinfo)))
  end
  local kind = req.body_kind
  if kind == "function" then
    if h:has("content-length") then
      req.length = math.tointeger(tonumber(h:get("content-length")))
      req.chunked = false
    else
      h:set("Transfer-Encoding", "chunked")
      req.chunked = true
    end
  elseif kind then
    h:set("Content-Length", req.length)
  elseif req.method == "POST" or req.method == "PUT" or req.method == "PATCH" then
    h:set("Content-Length", 0)
  end
  if kind and req.expect then h:set("Expect", "100-continue") end
  local buf = { req.method, " ", req.target, " HTTP/1.1\r\n" }
  h:write(buf)
  buf[#buf + 1] = "\r\n"
  return table.concat(buf)
end

local function write_body(c, req)
  local w, body, kind = c.w, req.body, req.body_kind
  if kind == "string" then
    w:write(body)
  elseif kind == "list" then
    w:writelines(body)
  elseif kind == "function" then
    if req.consumed then fail(req, "the body was streamed from a function: it cannot be sent again") end
    req.consumed = true
    local sent = 0
    while true do
      local chunk = body()
      if chunk == nil then break end
      if type(chunk) ~= "string" then
        error(fmt("%s: the body function returned a %s (a string or nil expected)",
          who(req), type(chunk)), 0)
      end
      if #chunk > 0 then
        sent = sent + #chunk
        if req.chunked then
          w:writelines({ fmt("%x\r\n", #chunk), chunk, "\r\n" })
        else
          w:write(chunk)
        end
        w:drain()
      end
    end
    if req.chunked then
      w:write("0\r\n\r\n")
    elseif req.length and sent ~= req.length then
      fail(req, fmt("the body function gave %d bytes, Content-Length says %d", sent, req.length))
    end
  end
end

local tunnel_context
local function default_context()
  tunnel_context = tunnel_context or aio.ssl.create_default_context()
  return tunnel_context
end

-- Opens a connection for req in pool (a slot is taken).
local function connect(client, req, pool)
  local u, px = req.u, req.proxy
  local ctx = u.scheme == "https" and (req.ssl or true) or nil
  local r, w
  if not px then
    r, w = aio.open_connection(u.host, u.port, ctx and { ssl = ctx } or nil)
  else
    r, w = aio.open_connection(px.host, px.port)
    if ctx then                      -- a tunnel through the proxy
      local c = { r = r, w = w }
      local hp = authority({ host = u.host, port = u.port, scheme = "" })
      local head = { "CONNECT ", hp, " HTTP/1.1\r\nHost: ", hp, "\r\n" }
      if px.userinfo then
        head[#head + 1] = "Proxy-Authorization: Basic " .. base64(hh.percent_decode(px.userinfo)) .. "\r\n"
      end
      head[#head + 1] = "\r\n"
      local ok, err = pcall(function()
        w:write(table.concat(head))
        local p = core.http_parser("response")
        p:skip_body()
        local h = read_head(c, p, req)
        if h.status < 200 or h.status > 299 then
          fail(req, fmt("the proxy refused the tunnel (%d %s)", h.status, h.reason))
        end
        if c.data and c.pos <= #c.data then fail(req, "the proxy sent bytes after its answer") end
        w:start_tls(ctx == true and default_context() or ctx, { server_hostname = u.host })
      end)
      if not ok then
        pcall(w._abort, w)
        error(err, 0)
      end
    end
  end
  return { r = r, w = w, client = client, pool = pool, reused = false }
end

-- Sends req on c and reads the head of the response -> Response.
local function exchange(req, c)
  c.got = false
  local p = core.http_parser("response")
  if req.method == "HEAD" then p:skip_body() end
  local w = c.w
  local head = build_head(req)
  local h
  if req.expect and req.body_kind then
    w:write(head)
    local cm
    local ok, got = pcall(function()
      cm = timeouts.timeout(req.expect_wait)
      local _ <close> = cm
      return read_head(c, p, req)
    end)
    if ok then
      if got.status >= 100 and got.status < 200 and got.status ~= 101 then
        write_body(c, req)
      else
        h = got                      -- answered at once: the body is not sent
        c.must_close = true
      end
    elseif cm and cm:expired() and is(got, core.TimeoutError) then
      write_body(c, req)             -- no "100 Continue" in time: send it
    else
      error(got, 0)
    end
  elseif req.body_kind == "string" and #req.body <= CHUNK then
    w:write(head .. req.body)
  else
    w:write(head)
    write_body(c, req)
  end
  while not h or (h.status >= 100 and h.status < 200 and h.status ~= 101) do
    h = read_head(c, p, req)
  end
  local res = setmetatable({
    status = h.status, reason = h.reason, version = h.version,
    headers = hh.new(h.headers), url = req.url, method = req.method,
    _req = req, _conn = c, _p = p, _done = false,
    _keep = h.keep_alive and not c.must_close,
  }, Response)
  local enc = req.decompress and req.method ~= "HEAD" and res.headers:get("content-encoding")
  if enc then
    enc = enc:lower():match("^%s*(.-)%s*$")
    if enc == "gzip" or enc == "x-gzip" or enc == "deflate" then res._decode = inflater(enc) end
  end
  -- what came with the head: the end of the response, often
  local q
  while true do
    local ev, x = step(c, p, req)
    if ev == "body" then
      q = q or {}
      q[#q + 1] = x
    elseif ev == "done" then
      if x ~= "" then q = q or {}; q[#q + 1] = x end
      finished(res)
      break
    elseif ev == nil then
      break
    end
  end
  res._raw = q
  return res
end

local function retryable(req, err)
  if not IDEMPOTENT[req.method] or req.body_kind == "function" then return false end
  if is(err, core.CancelledError) or is(err, core.TimeoutError) then return false end
  return is(err, core.OSError) or (is(err, HTTPError) and err.stale == true)
end

-- One request on one connection of the pool (one retry on a fresh
-- connection when a pooled one turns out closed) -> Response.
local function send(client, req, fresh)
  local c, pool = acquire(client, req.key, fresh)
  if not c then
    local ok, conn = pcall(connect, client, req, pool)
    if not ok then
      forget({ client = client, pool = pool })
      error(conn, 0)
    end
    c = conn
  end
  local ok, res = pcall(exchange, req, c)
  if ok then return res end
  abort(c)
  if c.reused and not c.got and not fresh and retryable(req, res) then
    return send(client, req, true)
  end
  error(res, 0)
end

-- Reads a small redirect body so that its connection can be reused (a
-- failed read closes it; a cancellation -- the deadline's too -- goes on).
local function discard_body(res)
  if res._done then return end
  local len = tonumber(res.headers:get("content-length") or "")
  if len and len <= CHUNK then
    local ok, err = pcall(function() while next_raw(res) do end end)
    if ok then return end
    if is(err, core.CancelledError) then error(err, 0) end
  end
  res:close()
end

local OPTIONS = {
  headers = true, body = true, json = true, timeout = true, read_timeout = true,
  redirects = true, ssl = true, expect_continue = true, decompress = true,
  proxy = true,
}

local function check_number(v, name, fname)
  if v ~= nil and (type(v) ~= "number" or v ~= v or v <= 0) then
    error(fmt("%s: option '%s' must be a positive number", fname, name), 4)
  end
end

-- A request's state from request()'s arguments (checked).
local function prepare(client, method, url, opts, fname)
  if type(method) ~= "string" or not method:match("^[%w!#$%%&'*+.^_`|~-]+$") then
    error(fmt("bad argument #1 to '%s' (HTTP method expected, got %s)", fname,
      type(method) == "string" and fmt("%q", method) or type(method)), 3)
  end
  local u, err = hh.parse_url(url)
  if not u or (u.scheme ~= "http" and u.scheme ~= "https") then
    error(fmt("bad argument #2 to '%s' (%s)", fname,
      u and "http or https URL expected" or err), 3)
  end
  if opts ~= nil and type(opts) ~= "table" then
    error(fmt("bad argument #3 to '%s' (options table expected, got %s)", fname, type(opts)), 3)
  end
  opts = opts or {}
  core.check_options(opts, fname, OPTIONS, 3)
  local timeout = opts.timeout
  if timeout == nil then timeout = client.timeout end
  local read_timeout = opts.read_timeout
  if read_timeout == nil then read_timeout = client.read_timeout end
  if timeout == false then timeout = nil end
  if read_timeout == false then read_timeout = nil end
  check_number(timeout, "timeout", fname)
  check_number(read_timeout, "read_timeout", fname)
  local redirects = opts.redirects
  if redirects == nil then redirects = client.redirects end
  if redirects == false then redirects = 0 end
  if math.type(redirects) ~= "integer" or redirects < 0 then
    error(fname .. ": option 'redirects' must be an integer >= 0", 3)
  end
  local decompress = opts.decompress
  if decompress == nil then decompress = client.decompress end
  decompress = decompress and zlib ~= nil
  local user = opts.headers
  if user ~= nil and type(user) ~= "table" then
    error(fmt("%s: option 'headers' must be a Headers or a table, got %s", fname, type(user)), 3)
  end
  user = hh.new(user)               -- (checks names and values)
  local defaults = hh.new({ "User-Agent", USER_AGENT, "Accept", "*/*" })
  if decompress then defaults:_push("Accept-Encoding", "gzip, deflate") end
  for name, value in client.headers:each() do defaults:set(name, value) end
  local req = {
    method = method, url = url, first = method .. " " .. url, u = u,
    user_headers = user, defaults = defaults, timeout = timeout,
    read_timeout = read_timeout, redirects = redirects, decompress = decompress,
    expect = opts.expect_continue and true or false, expect_wait = EXPECT_WAIT,
    ssl = opts.ssl, proxies = client.proxies,
  }
  if type(opts.expect_continue) == "number" then req.expect_wait = opts.expect_continue end
  if opts.proxy ~= nil then
    if opts.proxy == false then req.proxies = nil
    elseif type(opts.proxy) == "string" then
      req.proxies = { http = opts.proxy, https = opts.proxy }
    else
      error(fname .. ": option 'proxy' must be a URL or false", 3)
    end
  end
  if req.ssl == nil then req.ssl = client.ssl end
  if req.ssl ~= nil and req.ssl ~= true and not aio.ssl.is_context(req.ssl) then
    error(fmt("%s: option 'ssl' must be true or an SSLContext, got %s", fname, type(req.ssl)), 3)
  end
  local body = opts.body
  if opts.json ~= nil then
    if body ~= nil then error(fname .. ": options 'body' and 'json' exclude each other", 3) end
    if not cjson then error(fname .. ": option 'json' needs lua-cjson, which is not installed", 3) end
    body = cjson.encode(opts.json)
    if not user:has("content-type") then user:set("Content-Type", "application/json") end
  end
  if type(body) == "string" then
    req.body_kind, req.length = "string", #body
  elseif is_callable(body) then
    req.body_kind = "function"
  elseif type(body) == "table" then
    local n = 0
    for i, s in ipairs(body) do
      if type(s) ~= "string" then
        error(fmt("%s: option 'body': item %d is a %s (strings expected)", fname, i, type(s)), 3)
      end
      n = n + #s
    end
    req.body_kind, req.length = "list", n
  elseif body ~= nil then
    error(fmt("%s: option 'body' must be a string, a list of strings or a function, got %s",
      fname, type(body)), 3)
  end
  req.body = body
  if timeout then req.deadline = now() + timeout end
  route(req)
  return req
end

-- req for the redirect that res asks for.
local function redirected(req, res)
  local loc = res.headers:get("location")
  local url = M.resolve(req.url, loc)
  local u, err = hh.parse_url(url)
  if not u or (u.scheme ~= "http" and u.scheme ~= "https") then
    fail(req, fmt("cannot follow the redirect to '%s' (%s)", loc,
      u and "not an http or https URL" or err))
  end
  local keep = KEEP_METHOD[res.status]
  if keep and req.body_kind == "function" then
    fail(req, fmt("cannot follow a %d redirect: the body was streamed from a function", res.status))
  end
  local nreq = {}
  for k, v in pairs(req) do nreq[k] = v end
  nreq.url, nreq.u = url, u
  nreq.redirects = req.redirects - 1
  nreq.user_headers = hh.new(req.user_headers)
  if not keep and req.method ~= "HEAD" then
    nreq.method = "GET"
    nreq.body, nreq.body_kind, nreq.length = nil, nil, nil
    nreq.user_headers:remove("content-type")
    nreq.user_headers:remove("content-length")
    nreq.user_headers:remove("transfer-encoding")
  end
  if u.host ~= req.u.host or u.port ~= req.u.port or u.scheme ~= req.u.scheme then
    nreq.user_headers:remove("authorization")
    nreq.user_headers:remove("cookie")
    nreq.user_headers:remove("host")
  end
  route(nreq)
  return nreq
end

-- The request and the redirects it leads to -> the final Response.
local function follow(client, req)
  local max = req.redirects
  while true do
    local res = send(client, req)
    local loc = REDIRECT[res.status] and res.headers:get("location")
    if not loc or max == 0 then return res end
    if req.redirects == 0 then
      res:close()
      fail(req, fmt("too many redirects (more than %d)", max))
    end
    discard_body(res)
    req = redirected(req, res)
  end
end

local function timed_follow(cm, scope, client, req)
  scope.cm = cm
  return follow(client, req)
end

function Client:_request(method, url, opts, fname)
  if getmetatable(self) ~= Client then core.bad_self(self, "Client", fname) end
  core.check_task(fname)
  if self._closed then error(HTTPError(fname .. ": the client is closed"), 0) end
  local req = prepare(self, method, url, opts, fname)
  if not req.deadline then return follow(self, req) end
  local scope = {}
  local ok, res = pcall(timeouts.timeout_at, req.deadline, timed_follow, scope, self, req)
  if ok then return res end
  if is(res, core.TimeoutError) and scope.cm and scope.cm:expired() then
    error(core.TimeoutError(fmt("%s: no response within %g s (timeout)", req.first, req.timeout)), 0)
  end
  error(res, 0)
end

--- client:request(method, url [, opts]) -> Response
function Client:request(method, url, opts)
  if getmetatable(self) ~= Client then core.bad_self(self, "Client", "request") end
  return self:_request(method, url, opts, "request")
end

local SHORT = { get = "GET", head = "HEAD", post = "POST", put = "PUT",
                patch = "PATCH", delete = "DELETE", options = "OPTIONS" }
for name, method in pairs(SHORT) do
  Client[name] = function(self, url, opts)
    if getmetatable(self) ~= Client then core.bad_self(self, "Client", name) end
    return self:_request(method, url, opts, name)
  end
end

--- client:close(): closes every connection (idle now, busy ones when
--- their response ends); later requests raise.  Suspends until the
--- sockets closed so far are closed.
function Client:close()
  if getmetatable(self) ~= Client then core.bad_self(self, "Client", "close") end
  self._closed = true
  if self._timer then
    self._timer:cancel()
    self._timer = nil
  end
  for _, pool in pairs(self._pools) do
    local idle = pool.idle
    pool.idle = {}
    for _, c in ipairs(idle) do close_idle(c) end
  end
  self._wl:wake_all()
  if core.current_task() then
    local closing = {}
    for w in pairs(self._closing) do closing[#closing + 1] = w end
    self._closing = setmetatable({}, { __mode = "k" })
    for _, w in ipairs(closing) do aio.pcall(w.wait_closed, w) end
  end
end
Client.__close = Client.close

--- client:stats() -> {connections =, idle =, waiting =}
function Client:stats()
  if getmetatable(self) ~= Client then core.bad_self(self, "Client", "stats") end
  local idle = 0
  for _, pool in pairs(self._pools) do idle = idle + #pool.idle end
  return { connections = self._count, idle = idle, waiting = self._waiting }
end

function Client:__tostring()
  local s = self:stats()
  return fmt("Client(%d connections, %d idle%s)", s.connections, s.idle,
    self._closed and ", closed" or "")
end

local CLIENT_OPTIONS = {
  max_per_host = true, max_total = true, idle_timeout = true, timeout = true,
  read_timeout = true, headers = true, ssl = true, decompress = true,
  redirects = true, proxy = true,
}

--- aio.http.Client([opts]) -> client
function M.Client(opts)
  if opts ~= nil and type(opts) ~= "table" then
    error(fmt("bad argument #1 to 'Client' (options table expected, got %s)", type(opts)), 2)
  end
  opts = opts or {}
  core.check_options(opts, "Client", CLIENT_OPTIONS, 2)
  local function count(name, default)
    local v = opts[name]
    if v == nil then return default end
    if math.type(v) ~= "integer" or v < 1 then
      error(fmt("Client: option '%s' must be a positive integer", name), 3)
    end
    return v
  end
  local function seconds(name, default)
    local v = opts[name]
    if v == nil then return default end
    if v ~= false and (type(v) ~= "number" or v ~= v or v <= 0) then
      error(fmt("Client: option '%s' must be a positive number or false", name), 3)
    end
    return v or nil
  end
  if opts.headers ~= nil and type(opts.headers) ~= "table" then
    error("Client: option 'headers' must be a Headers or a table, got " .. type(opts.headers), 2)
  end
  local headers = hh.new(opts.headers)
  local proxies
  if opts.proxy == nil then proxies = env_proxies()
  elseif type(opts.proxy) == "string" then proxies = { http = opts.proxy, https = opts.proxy }
  elseif type(opts.proxy) == "table" then proxies = opts.proxy
  elseif opts.proxy ~= false then
    error("Client: option 'proxy' must be a URL, a table {http =, https =, no_proxy =} or false", 2)
  end
  local decompress = opts.decompress
  if decompress == nil then decompress = true end
  local redirects = opts.redirects
  if redirects == nil then redirects = 5 end
  return setmetatable({
    max_per_host = count("max_per_host", 10), max_total = count("max_total", 100),
    idle_timeout = seconds("idle_timeout", 30), timeout = seconds("timeout", 300),
    read_timeout = seconds("read_timeout", nil), headers = headers, ssl = opts.ssl,
    decompress = decompress, redirects = redirects, proxies = proxies,
    _pools = {}, _count = 0, _waiting = 0, _wl = core.WaitList(), _closed = false,
    _closing = setmetatable({}, { __mode = "k" }),
  }, Client)
end

------------------------------------------------------------------ module
local defaults = setmetatable({}, { __mode = "k" })   -- loop -> its client

--- default_client() -> the running loop's client for the module functions
function M.default_client()
  local loop = core.get_running_loop()
  local c = defaults[loop]
  if not c or c._closed then
    c = M.Client()
    defaults[loop] = c
  end
  return c
end

--- aio.http.request(method, url [, opts]) -> Response
function M.request(method, url, opts)
  core.check_task("request")
  return M.default_client():_request(method, url, opts, "request")
end

for name, method in pairs(SHORT) do
  M[name] = function(url, opts)
    core.check_task(name)
    return M.default_client():_request(method, url, opts, name)
  end
end

M.Response = Response
M.ClientClass = Client

return M
