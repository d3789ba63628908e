-- luaio.http_server: aio.http.serve(handler, host, port [, opts]) -- an
-- HTTP/1.1 server on luaio's streams, parsed by llhttp (core.http_parser).
--
-- One task per connection (the stream server's), looping over the
-- requests that come on it: handler(req, res) is called in that task, one
-- request at a time, so pipelined requests are answered in order.  One
-- parser per connection; per request there is the request table (the
-- parser's head, given a metatable) and the response table, nothing else.
--
-- This file: the connections (reading requests, their bodies, the
-- deadlines), the Request class, the Server and serve().  Responses are
-- written by luaio.http_response: what the handler returns -- `return
-- status, headers, body` (body: a string or a list of strings;
-- Content-Length is set) -- or what it writes with res:write_head /
-- res:write / res:finish (chunked when no Content-Length was given;
-- close-delimited for HTTP/1.0 clients).  HEAD gets the headers without
-- the body.  A body the handler left unread is skipped (up to 256 KiB;
-- beyond, the connection closes); "Expect: 100-continue" is answered
-- when the handler first reads the body.  A request asking for an
-- upgrade is answered, then its connection closed -- unless the handler
-- takes the connection over (req:websocket, aio.websocket): then the
-- server leaves it alone until the handler returns.  A connection closed while the client may still be
-- sending is half-closed first and drained for a moment (lingering), so
-- that no reset destroys the answer.
--
-- Limits: a request head over max_head or with more than max_headers
-- fields is answered 431, a target over max_uri 414, a body over max_body
-- 413 (at once when its Content-Length says so, or when reading it passes
-- the limit), anything llhttp refuses 400 (smuggling attempts included:
-- Content-Length with Transfer-Encoding, conflicting lengths); each with
-- Connection: close.  Deadlines: a head must arrive whole within
-- head_timeout (else 408 and close), a keep-alive connection may stay
-- idle for keepalive_timeout, each read of a request body must get data
-- within body_timeout, and a client must take some of what is queued for
-- it within write_timeout: a wait for the writer to drain (res:drain(),
-- the drain after each response and before the connection closes) ends
-- when no bytes went out for write_timeout -- no progress, not the wait's
-- length, so a slow but steady reader is served to the end.  Then the
-- connection is closed at once (what is queued is dropped: a client that
-- does not read gets no more) and res:drain() raises aio.TimeoutError
-- "drain: the client took no data for <t> s (write_timeout); the
-- connection is closed", as do the handler's writes after it; nothing
-- is reported.  One timer per server checks them all (every quarter of
-- the shortest, at most every second; progress is the writer's
-- transport_buffered() falling between two ticks), so a request costs a
-- field write, not a timer.
--
-- Errors: a handler that raises gets its request answered 500 (or its
-- connection closed when the head was already sent) and the error goes
-- to the loop's exception handler; a peer that went away is not an error.
--
-- Suspension points: every read of a request (the head, and the body
-- through req:read/body/lines), res:drain(), the drain after each
-- response, lingering, and whatever the handler awaits.  Cancelling a
-- connection's task (the run ending, the shutdown deadline) raises
-- CancelledError there or in the handler; the stream server closes the
-- connection when its task ends.  server:close() stops accepting, closes
-- the idle connections at once, lets the requests in flight finish (their
-- connections close after them) and, after shutdown_timeout, closes what
-- is left at once (its queued bytes dropped) and cancels its task.
-- (luaio.streams is reached through aio, not required again: a second
-- instance of it, as busted's insulation makes, would put its own
-- methods on every stream.)
local aio = require "luaio"
local core = require "luaio.core"
local hh = require "luaio.http_headers"
local R = require "luaio.http_response"

local M = {}

local lower, format, concat = string.lower, string.format, table.concat
local mtype = math.type
local is = core.is
local CancelledError, OSError = core.CancelledError, core.OSError
local lost, wwrite, error_response, CONTINUE = R.lost, R.wwrite, R.error_response, R.CONTINUE
local build_response, Response = R.build_response, R.Response
local NONE, SENT, FINISHED = R.NONE, R.SENT, R.FINISHED

--- An error raised by req:read/body/lines for a body the server refuses:
--- .status is 413 (over max_body) or 400 (malformed).
local HttpError = core.HTTPError
M.HTTPError = HttpError

local DEFAULTS = {
  max_head = 8192, max_headers = 100, max_uri = 8192,
  max_body = 1024 * 1024,
  head_timeout = 10, body_timeout = 10, keepalive_timeout = 5,
  max_requests = 1000, shutdown_timeout = 10,
  -- A client may take no bytes for this long (a phone going through a
  -- tunnel, a congested link: nginx's send_timeout is 60) before it is
  -- cut off; shorter than a minute, as a client that reads nothing holds
  -- a descriptor and the queued response in memory meanwhile.
  write_timeout = 30,
}
local READ_SIZE = 65536
local DRAIN_MAX = 256 * 1024    -- unread body bytes skipped to keep alive

-- Connection states (luaio.http_response defines them).
local IDLE, HEAD, BUSY, BODY, DRAIN = R.IDLE, R.HEAD, R.BUSY, R.BODY, R.DRAIN

------------------------------------------------------------------ body
local function body_error(c, status, msg)
  c.broken = true
  c.body_error = HttpError(msg, { status = status })
  error(c.body_error, 0)
end

-- The next piece of the request body (never ""), or nil at its end.
-- Suspends when none is buffered; the first such read answers
-- "Expect: 100-continue".
local function next_piece(c)
  local s = c.chunk
  if s ~= nil then
    c.chunk = nil
    local i = c.cpos
    if i > 1 then s = s:sub(i) end
    return s
  end
  if c.body_done then return nil end
  if c.body_error then error(c.body_error, 0) end
  if c.expect then
    c.expect = false
    local ok, err = pcall(c.w.write, c.w, CONTINUE)
    if not ok then lost(c, err) end
  end
  local p, srv = c.p, c.srv
  while true do
    if c.pos > #c.buf then
      c.buf, c.pos = "", 1             -- (not kept while waiting)
      c.state, c.deadline = BODY, srv.now + srv._o.body_timeout
      local ok, data = pcall(c.r.read, c.r, READ_SIZE)
      c.state, c.deadline = BUSY, nil
      if not ok then
        if is(data, CancelledError) then error(data, 0) end
        lost(c, data)
      end
      if data == nil then
        lost(c, HttpError("the connection closed before the request body was complete",
          { status = 400 }))
      end
      c.buf, c.pos = data, 1
    end
    local ev, pos, x, y = p:execute(c.buf, c.pos)
    if ev == "more" or ev == "done" then
      c.pos = pos
      if ev == "done" then c.body_done = true end
      if x ~= "" then
        local n = c.body_read + #x
        c.body_read = n
        if n > srv._o.max_body then
          body_error(c, 413, format("the request body is larger than max_body (%d bytes)",
            srv._o.max_body))
        end
        return x
      end
      if ev == "done" then return nil end
    elseif ev == "upgrade" then                -- (what follows is not HTTP)
      c.pos, c.body_done = pos, true
      return nil
    else
      body_error(c, 400, "invalid request body: " .. tostring(y) .. " (" .. tostring(x) .. ")")
    end
  end
end

-- Skips what the handler left of the body: true when the connection can
-- go on to the next request.
local function skip_body(c)
  if c.body_done then return true end
  if c.broken or c.expect then return false end
  local left = c.drain_max
  while true do
    local ok, s = pcall(next_piece, c)
    if not ok then
      if is(s, CancelledError) then error(s, 0) end
      return false
    end
    if s == nil then return true end
    left = left - #s
    if left < 0 then return false end
  end
end

------------------------------------------------------------------ Request
local Request = {}
local lazy = {}

local function split(req)
  local t = req.target
  local q = t:find("?", 1, true)
  local path = q and t:sub(1, q - 1) or t
  if path:find("%", 1, true) then path = hh.percent_decode(path) end
  rawset(req, "path", path)
  if q then rawset(req, "query_string", t:sub(q + 1)) end
  return path
end

function lazy.path(req) return split(req) end
function lazy.query_string(req)
  if rawget(req, "path") == nil then split(req) end
  return rawget(req, "query_string")
end
function lazy.query(req)
  local q = req.query_string
  local one = q and hh.decode_query(q) or {}
  rawset(req, "query", one)
  return one
end
function lazy.headers(req)
  local h = hh.new(req._raw)
  rawset(req, "headers", h)
  return h
end
local function peer(req)
  local host, port = req._c.w:get_extra_info("peername")
  rawset(req, "remote", host)
  rawset(req, "remote_port", port)
end
function lazy.remote(req) peer(req); return rawget(req, "remote") end
function lazy.remote_port(req) peer(req); return rawget(req, "remote_port") end

local request_mt = {
  __name = "HttpRequest",
  __index = function(req, k)
    local m = Request[k]
    if m ~= nil then return m end
    local f = lazy[k]
    if f ~= nil then return f(req) end
    return nil
  end,
  __tostring = function(req)
    return format("HttpRequest(%s %s)", req.method, req.target)
  end,
}

local function check_req(req, fname)
  if getmetatable(req) ~= request_mt then core.bad_self(req, "HttpRequest", fname, 3) end
  local c = req._c
  if c.req ~= req then error(fname .. ": the request is over", 3) end
  return c
end

--- req:read([n]) -> up to n bytes of the body (any amount without n); nil
--- at its end.  Suspends.
function Request:read(n)
  local c = check_req(self, "read")
  if n == nil then return next_piece(c) end
  if mtype(n) ~= "integer" or n <= 0 then
    error(format("bad argument #1 to 'read' (positive integer expected, got %s)",
      mtype(n) and tostring(n) or type(n)), 2)
  end
  local s = c.chunk
  if s == nil then
    s = next_piece(c)
    if s == nil then return nil end
    c.chunk, c.cpos = s, 1
  end
  local i = c.cpos
  if #s - i + 1 <= n then
    c.chunk = nil
    return i == 1 and s or s:sub(i)
  end
  c.cpos = i + n
  return s:sub(i, i + n - 1)
end

--- req:body() -> the whole body (what is left of it), "" if none.  The
--- same string on later calls.  Suspends.
function Request:body()
  if getmetatable(self) ~= request_mt then core.bad_self(self, "HttpRequest", "body") end
  local b = rawget(self, "_body")
  if b ~= nil then return b end
  local c = check_req(self, "body")
  local first = next_piece(c)
  if first == nil then
    b = ""
  else
    local second = next_piece(c)
    if second == nil then
      b = first
    else
      local parts = { first, second }
      for s in next_piece, c do parts[#parts + 1] = s end
      b = concat(parts)
    end
  end
  self._body = b
  return b
end

--- for line in req:lines() do ... end: the body's lines without "\n"
--- (io.lines); the last one as it is.  Suspends.
function Request:lines()
  local c = check_req(self, "lines")
  local buf, at, done = "", 1, false
  return function()
    while true do
      local i = buf:find("\n", at, true)
      if i then
        local line = buf:sub(at, i - 1)
        at = i + 1
        return line
      end
      if done then
        if at <= #buf then
          local line = buf:sub(at)
          buf, at = "", 1
          return line
        end
        return nil
      end
      local s = next_piece(c)
      if s == nil then done = true
      else buf, at = buf:sub(at) .. s, 1 end
    end
  end
end

--- req:websocket([opts]) -> a WebSocket: the handshake's answer, then
--- the connection is the WebSocket's (aio.websocket).
function Request:websocket(opts)
  check_req(self, "websocket")
  return aio.websocket.accept(self, opts)
end

--- req:_takeover(fname [, on_close]) -> reader, writer, bytes: the
--- connection is the caller's from now on (an upgrade), with the bytes
--- already read past the request; the server neither reads, writes nor
--- closes it before the handler returns.  on_close() is called (in a
--- callback: it must not suspend) when server:close() begins, so the
--- protocol can say goodbye.  Only once, before any response.
function Request:_takeover(fname, on_close)
  local c = check_req(self, fname)
  if c.taken then error(fname .. ": the connection was already taken over", 3) end
  if c.res._s ~= NONE then error(fname .. ": a response was already started", 3) end
  if not c.body_done then error(fname .. ": the request has a body", 3) end
  local rest = c.buf:sub(c.pos)
  c.taken, c.keep, c.buf, c.pos, c.on_close = true, false, "", 1, on_close
  return c.r, c.w, rest
end

------------------------------------------------------------------ handler
local last_traceback      -- set by on_error, read right after xpcall

local function on_error(err)
  if type(err) ~= "table" then last_traceback = debug.traceback(nil, 2) end
  return err
end

local function report(req, message, err, tb)
  core.get_running_loop():call_exception_handler({
    message = format("aio.http: %s (%s %s)", message, req.method, req.target),
    exception = err, traceback = tb, request = req,
  })
end

local function own_cancellation(c, err)
  return is(err, CancelledError) and c.task:cancelling() > 0
end

-- Runs the handler on req and makes sure the request gets a response.
local function handle(c, req, res)
  last_traceback = nil
  local ok, status, h, body = xpcall(c.srv._handler, on_error, req, res)
  if c.taken then                  -- (an upgrade: the connection is not ours)
    if not ok then
      if own_cancellation(c, status) then error(status, 0) end
      if not is(status, core.WebSocketError) then
        report(req, "the handler failed", status, last_traceback)
      end
    end
    return
  end
  if ok then
    if c.lost then c.keep = false; return end       -- no one to answer
    if status ~= nil then
      if res._s ~= NONE then
        report(req, "the handler returned a response after starting one with res", nil)
        c.keep = false
        return
      end
      local head, rest
      ok, head, rest = pcall(build_response, c, req, status, h, body)
      if not ok then
        report(req, "the handler's response is invalid", head)
        c.keep = false
        return wwrite(c, error_response(500, req.method == "HEAD"))
      end
      local w = c.w        -- (a write error ends the connection, unreported)
      w:write(head)
      if rest == nil then return end
      if type(rest) == "string" then return w:write(rest) end
      return w:writelines(rest)
    end
    if res._s == FINISHED then return end
    if res._s == NONE then
      report(req, "the handler returned no response", nil)
      c.keep = false
      return wwrite(c, error_response(500, req.method == "HEAD"))
    end
    return res:finish()
  end
  local err = status
  if own_cancellation(c, err) then error(err, 0) end
  c.keep = false
  if err == c.body_error then      -- a body the server refused
    if res._s < SENT then wwrite(c, error_response(err.status, req.method == "HEAD")) end
    return
  end
  if c.lost then return end        -- the peer went away: no report
  report(req, "the handler failed", err, last_traceback)
  if res._s < SENT then wwrite(c, error_response(500, req.method == "HEAD")) end
end

------------------------------------------------------------------ connections
local PARSE_STATUS = {
  HEAD_TOO_LARGE = 431, TOO_MANY_HEADERS = 431, URI_TOO_LONG = 414,
  ENOMEM = 503,
}

-- The deadline of c has passed (a timer callback): an idle connection is
-- closed, one in the middle of a head gets 408 first.  Only while its
-- task waits: one that has just been woken is no longer idle.  One
-- waiting for its writer to drain (a client that takes nothing) is
-- closed at once, what is queued dropped; the drain returns, and
-- res:drain() raises c.timed_out.  What is buffered of the next request
-- goes too: it is not served.
-- How long server:close() leaves a connection accepted but without its
-- first request yet (the client may have sent it already): closing it at
-- once would answer that request with a reset.
local FIRST_GRACE = 1

local function expire(c)
  local st = c.state
  if st == BUSY then return end
  local _, _, ts = c.task:_info()
  if ts ~= "waiting" then return end
  c.deadline, c.lost = nil, true
  if st == DRAIN then
    c.timed_out = core.TimeoutError(format(
      "drain: the client took no data for %g s (write_timeout); the connection is closed",
      c.srv._o.write_timeout))
    c.buf, c.pos, c.chunk = "", 1, nil
    c.w:_abort()
    return
  end
  if st == HEAD then pcall(c.w.write, c.w, error_response(408)) end
  c.w:close()          -- its read sees the end of the stream
end

-- The deadline of c, waiting for its writer to drain: write_timeout after
-- the tick last saw fewer bytes queued (or first saw it waiting).  The
-- socket's buffer lets the count fall in steps, when the kernel makes
-- room, not with every byte the client reads.
local function drain_deadline(srv, c, now)
  local q, d = c.w:transport_buffered(), c.deadline
  if d == nil or q < c.queued then
    d = now + srv._o.write_timeout
    c.queued, c.deadline = q, d
  end
  return d
end

local function tick(srv)
  local now = srv._loop:time()
  srv.now, srv._timer = now, nil
  for c in pairs(srv._conns) do
    local d = c.deadline
    if c.state == DRAIN then d = drain_deadline(srv, c, now) end
    if d ~= nil and d <= now then expire(c) end
  end
  local deadline = srv._deadline
  if deadline and now >= deadline then       -- shutdown: the rest goes
    for c in pairs(srv._conns) do             -- (closed at once: what is
      c.w:_abort()                            -- queued too)
      if c.task:cancelling() == 0 then c.task:cancel() end
    end
  end
  if srv._nconns > 0 then
    local at = now + srv._tick
    if deadline and deadline > now and deadline < at then at = deadline end
    srv._timer = srv._loop:call_at(at, tick, srv)
  end
end

local function start_ticking(srv)
  if srv._timer then return end
  srv.now = srv._loop:time()
  srv._timer = srv._loop:call_at(srv.now + srv._tick, tick, srv)
end

local function stop_ticking(srv)
  if srv._timer then srv._timer:cancel() end
  srv._timer = nil
end

-- Before closing a connection whose client may still be sending (a
-- refused request, a body left unread): the server's side is shut down
-- (the client reads the response, then EOF) and what comes is read and
-- dropped for up to LINGER seconds, until the client closes.  Closing
-- at once would make the kernel answer that data with a reset, which
-- can destroy the response before the client has read it.  (TLS streams
-- cannot half-close; they drop unread input themselves.)
local LINGER, LINGER_MAX = 2, 4 * 1024 * 1024

local function linger(c)
  local w = c.w
  if not w:can_write_eof() or w:is_closing() then return end
  if not pcall(w.write_eof, w) then return end
  c.state, c.deadline, c.lost = BODY, c.srv.now + LINGER, true
  local left = LINGER_MAX
  while left > 0 do
    local ok, data = pcall(c.r.read, c.r, READ_SIZE)
    if not ok then
      if is(data, CancelledError) then error(data, 0) end
      return
    end
    if data == nil then return end
    left = left - #data
  end
end

-- The server's own answer to a request it refuses, then the end.
local function refuse(c, status, head_only)
  c.w:write(error_response(status, head_only))
  linger(c)
end

-- The requests of one connection, in order, until it closes.
local function serve_connection(srv, c)
  local p, r = c.p, c.r
  local o = srv._o
  local head_timeout, max_body = o.head_timeout, o.max_body
  while true do
    -- the head
    local ev, pos, x, ended
    while true do
      if c.pos > #c.buf then
        if c.state == IDLE and srv._closing and c.nreq > 0 then return end
        c.buf, c.pos = "", 1           -- (an idle connection keeps no buffer)
        local data = r:read(READ_SIZE)
        if data == nil then return end          -- the peer (or a deadline) closed
        c.buf, c.pos = data, 1
      end
      ev, pos, x, ended = p:execute(c.buf, c.pos)
      if ev == "head" then break end
      if ev == "upgrade" then return end        -- (after an upgrade request)
      if ev ~= "more" then                      -- (an error)
        return refuse(c, PARSE_STATUS[x] or 400)
      end
      c.pos = pos
      if c.state == IDLE then
        c.state, c.deadline = HEAD, srv.now + head_timeout
      end
    end
    c.pos, c.state, c.deadline = pos, BUSY, nil
    local req = x
    c.nreq, c.keep = c.nreq + 1, false
    -- what of the body came with it
    c.body_read, c.chunk, c.cpos, c.expect, c.broken, c.body_error, c.lost =
      0, nil, 1, false, false, nil, false
    if ended then                     -- (no body: done_with_head)
      ev, x = "done", ""
    else
      ev, pos, x = p:execute(c.buf, c.pos)
    end
    if ev == "done" then
      c.body_done = true
    elseif ev == "more" then
      c.body_done = false
    elseif ev == "upgrade" then
      c.body_done = true
    else
      return refuse(c, PARSE_STATUS[x] or 400, req.method == "HEAD")
    end
    c.pos = pos
    local raw, cl = req.headers, req.content_length
    req.headers, req._raw, req._c = nil, raw, c
    setmetatable(req, request_mt)
    c.req = req
    if x ~= "" then
      c.chunk, c.body_read = x, #x
    end
    if (cl and cl > max_body) or c.body_read > max_body then
      return refuse(c, 413, req.method == "HEAD")
    end
    if not c.body_done and c.chunk == nil and req.version == "1.1" then
      for i = 1, #raw, 2 do
        if lower(raw[i]) == "expect" and lower(raw[i + 1]) == "100-continue" then
          c.expect = true
        end
      end
    end
    -- the handler
    c.res = setmetatable({ _c = c, _req = req, _s = NONE }, Response)
    handle(c, req, c.res)
    c.req, c.res = nil, nil
    if c.taken then return end
    if not c.keep or not skip_body(c) then
      if not c.body_done or c.pos <= #c.buf then linger(c) end
      return
    end
    c.state = DRAIN
    c.w:drain()
    c.state, c.deadline = IDLE, srv.now + o.keepalive_timeout
  end
end

-- The end of a connection: what is still queued must go out within
-- write_timeout, all of it (the stream server's close would wait for it
-- as long as the client takes nothing).  Cancellation passes through.
local function flush(c)
  if c.timed_out then return end
  local w = c.w
  c.state, c.deadline = DRAIN, nil
  local ok, err = pcall(w.set_write_buffer_limits, w, 0, 0)
  if ok then ok, err = pcall(w.drain, w) end
  if not ok and is(err, CancelledError) then error(err, 0) end
end

-- The stream server's handler: one connection.
local function connection(srv, r, w)
  local c = {
    srv = srv, r = r, w = w, task = core.current_task(),
    p = core.http_parser("request", srv._limits),
    buf = "", pos = 1, state = IDLE, nreq = 0, keep = false,
    body_done = true, body_read = 0, cpos = 1, queued = 0,
    drain_max = math.min(DRAIN_MAX, srv._o.max_body),
  }
  srv._conns[c] = true
  srv._nconns = srv._nconns + 1
  start_ticking(srv)
  c.deadline = srv.now + srv._o.head_timeout
  local ok, err = pcall(serve_connection, srv, c)
  if (ok or not is(err, CancelledError)) and not c.taken then
    local fok, ferr = pcall(flush, c)
    if not fok then ok, err = false, ferr end
  end
  srv._conns[c] = nil
  srv._nconns = srv._nconns - 1
  c.req = nil
  if srv._nconns == 0 and srv._closing then stop_ticking(srv) end
  if not ok then
    if is(err, CancelledError) then error(err, 0) end
    if not c.lost and not is(err, OSError) and err ~= "write: the writer is closed" then
      core.get_running_loop():call_exception_handler({
        message = "aio.http: a connection failed", exception = err,
      })
    end
  end
end

------------------------------------------------------------------ Server
local Server = {}
Server.__index = Server
Server.__name = "HttpServer"

local function check_server(s, fname)
  if getmetatable(s) ~= Server then core.bad_self(s, "HttpServer", fname, 3) end
end

--- server:close([timeout]): stops accepting; idle connections are closed
--- now (one accepted whose first request has not come yet gets a second
--- for it, then Connection: close), the others after the request they are
--- serving; what is still open after timeout (default
--- opts.shutdown_timeout) seconds is cancelled.
function Server:close(timeout)
  check_server(self, "close")
  if timeout ~= nil and (type(timeout) ~= "number" or timeout ~= timeout or timeout < 0) then
    error(format("bad argument #1 to 'close' (number >= 0 expected, got %s)",
      type(timeout) == "number" and tostring(timeout) or type(timeout)), 2)
  end
  if self._closing then return end
  self._closing = true
  self._server:close()
  local now = self._loop:time()
  self.now = now
  self._deadline = now + (timeout or self._o.shutdown_timeout)
  for c in pairs(self._conns) do
    if c.state == IDLE then
      if c.nreq == 0 then            -- just accepted: its request may be on
        c.deadline = math.min(c.deadline or math.huge, now + FIRST_GRACE)   -- its way
      else
        expire(c)
      end
    elseif c.on_close then                   -- (taken over: its goodbye)
      local ok, err = pcall(c.on_close)
      if not ok then
        self._loop:call_exception_handler({
          message = "aio.http: a taken-over connection's on_close failed", exception = err })
      end
    end
  end
  stop_ticking(self)
  if self._nconns > 0 then tick(self) end     -- (reschedules, deadline in view)
end

--- server:wait_closed(): until the server and all its connections are
--- closed.  Suspends.
function Server:wait_closed()
  check_server(self, "wait_closed")
  self._server:wait_closed()
end

--- server:shutdown([timeout]): close(timeout), then wait_closed().
function Server:shutdown(timeout)
  check_server(self, "shutdown")
  self:close(timeout)
  self._server:wait_closed()
end

--- server:serve_forever(): suspends until the server is closed;
--- cancelling it closes the server (gracefully, as close()).
function Server:serve_forever()
  check_server(self, "serve_forever")
  local ok, err = pcall(self._server.serve_forever, self._server)
  self:close()
  if not ok then error(err, 0) end
end

function Server:getsockname()
  check_server(self, "getsockname")
  return self._server:getsockname()
end
function Server:is_serving()
  check_server(self, "is_serving")
  return self._server:is_serving()
end
function Server:get_loop()
  check_server(self, "get_loop")
  return self._loop
end
Server.__close = function(s) s:close() end
function Server:__tostring()
  return format("HttpServer(%d connection(s)%s)", self._nconns,
    self._closing and ", closing" or "")
end

------------------------------------------------------------------ serve
local OPTION_KINDS = {
  ssl = "any", ssl_handshake_timeout = "any", backlog = "any", path = "string",
  max_head = "integer", max_headers = "integer", max_uri = "integer",
  max_body = "integer", max_requests = "integer",
  head_timeout = "number", body_timeout = "number", keepalive_timeout = "number",
  shutdown_timeout = "number", write_timeout = "number",
}

local function check_opts(opts)
  if opts ~= nil and type(opts) ~= "table" then
    error("bad argument #4 to 'serve' (options table expected, got " .. type(opts) .. ")", 3)
  end
  local o = {}
  for k, v in pairs(DEFAULTS) do o[k] = v end
  core.check_options(opts, "serve", OPTION_KINDS, 3)
  for k, v in pairs(opts or {}) do
    local kind = OPTION_KINDS[k]
    if kind == "integer" and (mtype(v) ~= "integer" or v <= 0) then
      error(format("serve: option '%s' must be a positive integer", k), 3)
    elseif kind == "number" and (type(v) ~= "number" or v ~= v or v <= 0) then
      error(format("serve: option '%s' must be a positive number of seconds", k), 3)
    elseif kind == "string" and type(v) ~= "string" then
      error(format("serve: option '%s' must be a string", k), 3)
    end
    o[k] = v
  end
  return o
end

--- serve(handler, host, port [, opts]) -> server; serve(handler, opts)
--- with opts.path (a unix socket) or opts.host / opts.port.
function M.serve(handler, host, port, opts)
  if type(host) == "table" and port == nil and opts == nil then
    local given = host
    host, port, opts = given.host, given.port, {}
    for k, v in pairs(given) do
      if k ~= "host" and k ~= "port" then opts[k] = v end
    end
  end
  local ht = type(handler)
  local mt = getmetatable(handler)
  if ht ~= "function" and not (mt and mt.__call) then
    error("bad argument #1 to 'serve' (function expected, got " .. ht .. ")", 2)
  end
  local o = check_opts(opts)
  if not core.running_loop() then error("serve: no running event loop", 2) end
  local srv = setmetatable({
    _handler = handler, _o = o, _loop = core.get_running_loop(),
    _limits = { max_head = o.max_head, max_headers = o.max_headers, max_uri = o.max_uri,
                done_with_head = true },
    _conns = {}, _nconns = 0, _closing = false, now = 0,
    _tick = math.max(0.01, math.min(1, math.min(o.head_timeout, o.body_timeout,
      o.keepalive_timeout, o.write_timeout) / 4)),
  }, Server)
  local function on_connection(r, w) return connection(srv, r, w) end
  local sopts = { backlog = o.backlog, ssl = o.ssl,         -- (a handshake is part
                  ssl_handshake_timeout = o.ssl and        -- of the head's time)
                    (o.ssl_handshake_timeout or o.head_timeout) }
  if o.path then
    srv._server = aio.start_unix_server(on_connection, o.path, sopts)
  else
    srv._server = aio.start_server(on_connection, host, port, sopts)
  end
  return srv
end

return M
