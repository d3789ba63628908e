-- luaio.http_response: writing the server's responses (luaio.http_server
-- serves the connections and calls these).
--
-- A response is what the handler returns -- `return status, headers,
-- body`, turned into bytes by build_response -- or what it writes with
-- the Response methods (res:write_head / res:write / res:finish /
-- res:drain).  Here: status lines, the Date line, the server's own error
-- answers, the checks of a handler's headers and the cache of the header
-- lines that passed them, the framing (Content-Length, chunked, or to
-- the end of the connection) and whether the connection stays open.
--
-- The connection (c) is luaio.http_server's record; this module reads
-- its fields and writes c.keep, c.lost, c.state.  The connection states
-- are defined here, for both.
local core = require "luaio.core"
local hh = require "luaio.http_headers"

local M = {}

local lower, format, concat = string.lower, string.format, table.concat
local mtype = math.type
local is = core.is
local CancelledError = core.CancelledError
local REASONS = hh.REASONS
local HeadersMT = hh.Headers

local SMALL_BODY = 16384        -- a body up to this goes out with its head

-- Connection states (what a connection's task waits for; the server's
-- timer reads them): IDLE between requests, HEAD in a head, BUSY in the
-- handler, BODY reading a body (or lingering), DRAIN waiting for the
-- writer to drain (which write_timeout bounds).
local IDLE, HEAD, BUSY, BODY, DRAIN = 1, 2, 3, 4, 5
M.IDLE, M.HEAD, M.BUSY, M.BODY, M.DRAIN = IDLE, HEAD, BUSY, BODY, DRAIN

-- The peer is gone (err: what writing or reading to it raised).
local function lost(c, err)
  c.lost = true
  error(err, 0)
end
M.lost = lost

------------------------------------------------------------------ writing
local status_lines = {}
local function status_line(code)
  local s = status_lines[code]
  if s == nil then
    s = format("HTTP/1.1 %d %s\r\n", code, REASONS[code] or "")
    status_lines[code] = s
  end
  return s
end

-- The Date line (and with the blank line that ends a head after it).
local date_sec, date_line, date_end = -1, "", ""
local function date(ending)
  local t = os.time()
  if t ~= date_sec then
    date_sec, date_line = t, os.date("!Date: %a, %d %b %Y %H:%M:%S GMT\r\n", t)
    date_end = date_line .. "\r\n"
  end
  return ending and date_end or date_line
end

-- A plain-text answer of the server's own, after which it closes.
local function error_response(status, head_only)
  local text = (REASONS[status] or "Error") .. "\n"
  return status_line(status) .. "Content-Type: text/plain; charset=utf-8\r\n"
    .. "Content-Length: " .. #text .. "\r\nConnection: close\r\n" .. date()
    .. "\r\n" .. (head_only and "" or text)
end

local CONTINUE = "HTTP/1.1 100 Continue\r\n\r\n"

-- The message of a header the handler may not send, or nil (the checks
-- of luaio.http_headers, named after the function that was called).
local function bad_header(name, value, fname)
  if type(name) ~= "string" then
    return format("%s: header name must be a string, got %s", fname, type(name))
  end
  if name == "" or name:find("[%c%s:]") then
    return format("%s: invalid header name %q", fname, name)
  end
  local t = type(value)
  if t ~= "string" and t ~= "number" then
    return format("%s: value of header '%s' must be a string, got %s", fname, name, t)
  end
  if t == "string" and value:find("[\r\n%z]") then
    return format("%s: value of header '%s' contains CR, LF or NUL", fname, name)
  end
end

-- The scratch list a response head is built in (nothing suspends while
-- it is in use).
local B = {}

-- Header lines that passed the checks, remembered: name -> value ->
-- "name: value\r\n" (a handler's headers are mostly constants, and the
-- checks' patterns cost more than the rest of a small response).  Not
-- the headers the server acts on.  Forgets everything at CACHE_MAX lines.
local CACHE_MAX, CACHE_VALUE_MAX = 512, 128
local lines, nlines = {}, 0

local SPECIAL = { ["content-length"] = true, connection = true,
                  ["transfer-encoding"] = true, date = true }

-- One header field from the handler into B after n: n, and what it says
-- that the server acts on (k: the name in lower case, when it is known to
-- be valid, as in a Headers).
local function put_header(name, value, n, f, fname, k)
  local known = lines[name]
  local line = known and known[value]
  if line then
    B[n + 1] = line
    return n + 1
  end
  if k == nil then
    local msg = bad_header(name, value, fname)
    if msg then error(msg, 0) end
    k = lower(name)
  end
  if SPECIAL[k] then
    if k == "content-length" then
      value = tostring(value)
      if not value:match("^%d+$") then
        error(format("%s: Content-Length must be a number of bytes, got %q", fname, value), 0)
      end
      f._cl = value
      return n
    elseif k == "connection" then
      if lower(value):find("close", 1, true) then f._close = true end
      return n
    elseif k == "transfer-encoding" then
      error(fname .. ": Transfer-Encoding is the server's to set", 0)
    end
    f._date = true
    B[n + 1] = name .. ": " .. value .. "\r\n"
    return n + 1
  end
  line = name .. ": " .. value .. "\r\n"
  if type(value) == "string" and #value <= CACHE_VALUE_MAX then
    if nlines >= CACHE_MAX then lines, nlines = {}, 0 end
    known = lines[name]
    if known == nil then known = {}; lines[name] = known end
    known[value], nlines = line, nlines + 1
  end
  B[n + 1] = line
  return n + 1
end

-- The handler's headers (a Headers, or {name = value | {values}}) into B
-- after n; f gets _cl (Content-Length), _close (Connection: close asked
-- for), _date (a Date given).  -> n
local function put_headers(h, n, f, fname)
  local mt = getmetatable(h)
  if mt == HeadersMT or (mt ~= nil and mt.__name == "Headers" and rawget(h, "_keys")) then
    -- (a Headers, from this luaio.http_headers or another instance of it:
    -- its fields were checked when they were set)
    local names, keys, values = h._names, h._keys, h._values
    for i = 1, #names do n = put_header(names[i], values[i], n, f, fname, keys[i]) end
  elseif type(h) == "table" then
    for name, v in pairs(h) do
      if type(v) == "table" then
        for _, x in ipairs(v) do n = put_header(name, x, n, f, fname) end
      else
        n = put_header(name, v, n, f, fname)
      end
    end
  elseif h ~= nil then
    error(format("%s: headers must be a table or Headers, got %s", fname, type(h)), 0)
  end
  return n
end

-- "Content-Length: n\r\n", remembered for small n.
local cl_lines = {}
local function cl_line(len)
  local s = cl_lines[len]
  if s == nil then
    s = "Content-Length: " .. len .. "\r\n"
    if len < 4096 then cl_lines[len] = s end
  end
  return s
end

local function check_status(status, fname)
  if mtype(status) ~= "integer" or status < 200 or status > 999 then
    error(format("%s: status must be an integer from 200 to 999, got %s", fname,
      mtype(status) and tostring(status) or type(status)), 0)
  end
end

-- Whether the connection stays open after this response (close: the
-- handler asked for it).
local function keep_alive(c, req, close)
  local srv = c.srv
  if close or not req.keep_alive or req.upgrade or srv._closing
      or c.nreq >= srv._o.max_requests then
    return false
  end
  if not c.body_done then          -- what the handler left unread
    if c.expect or c.broken then return false end
    local cl = req.content_length
    if cl and cl - c.body_read > c.drain_max then return false end
  end
  return true
end

-- The connection and date lines, then the end of the head, into B after n.
local function end_head(c, req, n, f)
  local keep = keep_alive(c, req, f._close)
  c.keep = keep
  if not keep then
    n = n + 1; B[n] = "Connection: close\r\n"
  elseif req.version == "1.0" then
    n = n + 1; B[n] = "Connection: keep-alive\r\n"
  end
  n = n + 1
  B[n] = f._date and "\r\n" or date(true)
  return n
end

-- The flags of a returned response's headers (nothing suspends while
-- they are in use).
local F = {}

-- The response a handler returned: -> what to write (the head, with the
-- body when it is small), and a body to write after it, or nil.  Raises
-- for what the handler got wrong; writes nothing.
local function build_response(c, req, status, h, body)
  check_status(status, "response")
  F._cl, F._close, F._date = nil, false, false
  local n = 1
  B[1] = status_line(status)
  if h ~= nil then n = put_headers(h, 1, F, "response") end
  local len, tb = 0, type(body)
  if tb == "string" then
    len = #body
  elseif tb == "table" then
    for i = 1, #body do
      local s = body[i]
      if type(s) ~= "string" then
        error(format("response: body[%d] must be a string, got %s", i, type(s)), 0)
      end
      len = len + #s
    end
  elseif body ~= nil then
    error("response: body must be a string or a list of strings, got " .. tb, 0)
  end
  if (body == nil and req.method == "HEAD") or status == 304 then
    if F._cl then n = n + 1; B[n] = "Content-Length: " .. F._cl .. "\r\n" end
  elseif status ~= 204 then                              -- (204: no length)
    n = n + 1; B[n] = cl_line(len)
  end
  n = end_head(c, req, n, F)
  if req.method == "HEAD" or status == 204 or status == 304 or len == 0 then
    return concat(B, "", 1, n)
  elseif tb == "string" and len <= SMALL_BODY then
    B[n + 1] = body
    return concat(B, "", 1, n + 1)
  end
  return concat(B, "", 1, n), body
end

------------------------------------------------------------------ Response
-- res._s: what was done so far.
local NONE, GIVEN, SENT, FINISHED = 0, 1, 2, 3

local Response = {}
Response.__index = Response
Response.__name = "HttpResponse"

local function check_res(res, fname)
  if getmetatable(res) ~= Response then core.bad_self(res, "HttpResponse", fname, 3) end
  if res._s == FINISHED then error(fname .. ": the response is finished", 3) end
  return res._c
end

-- (After write_timeout cut the client off, its TimeoutError.)
local function wwrite(c, s)
  local ok, err = pcall(c.w.write, c.w, s)
  if not ok then lost(c, c.timed_out or err) end
end

--- res:write_head(status [, headers]): the status and headers; they go out
--- with the first write (or finish), framed then.
function Response:write_head(status, headers)
  check_res(self, "write_head")
  if self._s ~= NONE then error("write_head: the head was already given", 2) end
  check_status(status, "write_head")
  B[1] = status_line(status)
  local n = put_headers(headers, 1, self, "write_head")
  self._head, self._s = concat(B, "", 1, n), GIVEN
  self.status = status
end

-- Sends the head; known: the whole body is data (finish with nothing
-- written), so it gets a Content-Length.
local function send_head(res, known, data)
  local c, req, status = res._c, res._req, res.status
  local n = 1
  B[1] = res._head
  local no_body = req.method == "HEAD" or status == 204 or status == 304
  res._no_body = no_body
  if res._cl then
    n = n + 1; B[n] = "Content-Length: " .. res._cl .. "\r\n"
    res._left = tonumber(res._cl)
  elseif status == 204 or status == 304 then   -- (no length, no body)
    res._left = nil
  elseif known then
    local len = data and #data or 0
    n = n + 1; B[n] = cl_line(len)
    res._left = len
  elseif no_body then                            -- (HEAD: no framing)
    res._left = nil
  elseif req.version == "1.0" then               -- to the end of the connection
    res._close = true
  else
    n = n + 1; B[n] = "Transfer-Encoding: chunked\r\n"
    res._chunked = true
  end
  n = end_head(c, req, n, res)
  if known and data and not no_body and #data <= SMALL_BODY
      and (res._left == nil or #data <= res._left) then
    n = n + 1; B[n] = data
    if res._left then res._left = res._left - #data end   -- (sent: not short)
    data = nil
  end
  res._s = SENT
  wwrite(c, concat(B, "", 1, n))
  return data
end

local function write_body(res, c, data)
  local len = #data
  if len == 0 or res._no_body then return end
  if res._chunked then
    if len <= SMALL_BODY then
      wwrite(c, format("%x\r\n%s\r\n", len, data))
    else
      wwrite(c, format("%x\r\n", len)); wwrite(c, data); wwrite(c, "\r\n")
    end
    return
  end
  local left = res._left
  if left then
    if len > left then
      error(format("write: more than the Content-Length (%d bytes left, %d given)", left, len), 3)
    end
    res._left = left - len
  end
  wwrite(c, data)
end

--- res:write(data): a piece of the body (a chunk when chunked).  Sends
--- the head first (status 200 if write_head was not called).
function Response:write(data)
  local c = check_res(self, "write")
  if type(data) ~= "string" then
    error("bad argument #1 to 'write' (string expected, got " .. type(data) .. ")", 2)
  end
  if self._s == NONE then self:write_head(200) end
  if self._s == GIVEN then send_head(self, false) end
  write_body(self, c, data)
end

--- res:finish([data]): the end of the response.  With nothing written
--- before, data is the whole body and gets a Content-Length.
function Response:finish(data)
  local c = check_res(self, "finish")
  if data ~= nil and type(data) ~= "string" then
    error("bad argument #1 to 'finish' (string expected, got " .. type(data) .. ")", 2)
  end
  if self._s == NONE then self:write_head(200) end
  if self._s == GIVEN then
    data = send_head(self, true, data)
    if data then write_body(self, c, data) end
  else
    if data then write_body(self, c, data) end
    if self._chunked then wwrite(c, "0\r\n\r\n") end
  end
  if self._left and self._left > 0 then c.keep = false end   -- (short)
  self._s = FINISHED
end

--- res:drain(): waits while much is queued to the client (sends the head
--- if it is still held).  Suspends.  A client that takes no data for
--- write_timeout seconds is cut off: its connection is closed at once
--- and this raises aio.TimeoutError "drain: the client took no data for
--- 30 s (write_timeout); the connection is closed" (later writes too).
function Response:drain()
  local c = check_res(self, "drain")
  if self._s == GIVEN then send_head(self, false) end
  c.state = DRAIN                   -- (the server's timer watches it)
  local ok, err = pcall(c.w.drain, c.w)
  c.state, c.deadline = BUSY, nil
  if not ok and is(err, CancelledError) then error(err, 0) end
  if c.timed_out then lost(c, c.timed_out) end
  if not ok then lost(c, err) end
end

--- res:head_sent() -> whether the status and headers went out
function Response:head_sent()
  if getmetatable(self) ~= Response then core.bad_self(self, "HttpResponse", "head_sent") end
  return self._s >= SENT
end

M.error_response, M.CONTINUE = error_response, CONTINUE
M.build_response, M.wwrite, M.Response = build_response, wwrite, Response
M.NONE, M.SENT, M.FINISHED = NONE, SENT, FINISHED

return M
