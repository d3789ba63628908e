-- luaio.http_headers: what the HTTP client and server share -- header
-- lists (case-insensitive lookup, repeated fields kept in the order they
-- came), URL parsing and percent-decoding, and the checks a header a
-- program sets must pass before it is written (no CR, LF or NUL: a value
-- with a line end would let one header smuggle in others).
-- Nothing here suspends.
local core = require "luaio.core"

local M = {}

--- aio.http.HTTPError: what the client and the server raise for HTTP
--- itself (a bad response, a body over a limit, too many redirects ...)
M.HTTPError = core.HTTPError

------------------------------------------------------------------ Headers
local Headers = {}
Headers.__index = Headers
Headers.__name = "Headers"

local lower = string.lower

local function check_name(name, fname)
  if type(name) ~= "string" then
    error(("%s: header name must be a string, got %s"):format(fname, type(name)), 3)
  end
  if name == "" or name:find("[%c%s:]") then
    error(("%s: invalid header name %q"):format(fname, name), 3)
  end
end

local function check_value(value, name, fname)
  local t = type(value)
  if t == "number" then return tostring(value) end
  if t ~= "string" then
    error(("%s: value of header '%s' must be a string, got %s"):format(fname, name, t), 3)
  end
  if value:find("[\r\n%z]") then
    error(("%s: value of header '%s' contains CR, LF or NUL"):format(fname, name), 3)
  end
  return value
end
M.check_name, M.check_value = check_name, check_value

--- Headers.new([init]) -> headers; init: a flat list {name, value, ...}
--- (as the parser gives them, trusted), or a table {name = value} /
--- {name = {v1, v2}} (checked).
function M.new(init)
  local h = setmetatable({ _names = {}, _keys = {}, _values = {} }, Headers)
  if init == nil then return h end
  if type(init) ~= "table" then
    error("Headers: a table expected, got " .. type(init), 2)
  end
  if getmetatable(init) == Headers then
    for i, n in ipairs(init._names) do h:_push(n, init._values[i]) end
  elseif #init > 0 then
    for i = 1, #init, 2 do h:_push(init[i], init[i + 1]) end
  else
    local names = {}
    for name in pairs(init) do names[#names + 1] = name end
    table.sort(names, function(a, b) return tostring(a) < tostring(b) end)
    for _, name in ipairs(names) do
      local v = init[name]
      if type(v) == "table" then
        for _, x in ipairs(v) do h:add(name, x) end
      else
        h:add(name, v)
      end
    end
  end
  return h
end

function Headers:_push(name, value)
  local i = #self._names + 1
  self._names[i], self._keys[i], self._values[i] = name, lower(name), value
end

--- h:get(name) -> the first value of name (any case), or nil
function Headers:get(name)
  if getmetatable(self) ~= Headers then core.bad_self(self, "Headers", "get") end
  local key, keys = lower(name), self._keys
  for i = 1, #keys do
    if keys[i] == key then return self._values[i] end
  end
  return nil
end

--- h:get_all(name) -> list of every value of name, in order
function Headers:get_all(name)
  if getmetatable(self) ~= Headers then core.bad_self(self, "Headers", "get_all") end
  local key, keys, out = lower(name), self._keys, {}
  for i = 1, #keys do
    if keys[i] == key then out[#out + 1] = self._values[i] end
  end
  return out
end

function Headers:has(name)
  if getmetatable(self) ~= Headers then core.bad_self(self, "Headers", "has") end
  return self:get(name) ~= nil
end

--- h:add(name, value): another field (kept after the others)
function Headers:add(name, value)
  if getmetatable(self) ~= Headers then core.bad_self(self, "Headers", "add") end
  check_name(name, "Headers:add")
  self:_push(name, check_value(value, name, "Headers:add"))
end

--- h:remove(name) -> how many fields were removed
function Headers:remove(name)
  if getmetatable(self) ~= Headers then core.bad_self(self, "Headers", "remove") end
  local key, n = lower(name), 0
  for i = #self._keys, 1, -1 do
    if self._keys[i] == key then
      table.remove(self._names, i)
      table.remove(self._keys, i)
      table.remove(self._values, i)
      n = n + 1
    end
  end
  return n
end

--- h:set(name, value): replaces every field of name by one
function Headers:set(name, value)
  if getmetatable(self) ~= Headers then core.bad_self(self, "Headers", "set") end
  check_name(name, "Headers:set")
  value = check_value(value, name, "Headers:set")
  self:remove(name)
  self:_push(name, value)
end

--- for name, value in h:each() do ... end (in order, as sent)
function Headers:each()
  if getmetatable(self) ~= Headers then core.bad_self(self, "Headers", "each") end
  local i = 0
  return function()
    i = i + 1
    local n = self._names[i]
    if n ~= nil then return n, self._values[i] end
  end
end

function Headers:count()
  if getmetatable(self) ~= Headers then core.bad_self(self, "Headers", "count") end
  return #self._names
end

--- h:write(buf): appends "Name: value\r\n" lines to the list buf
function Headers:write(buf)
  if getmetatable(self) ~= Headers then core.bad_self(self, "Headers", "write") end
  local n = #buf
  for i, name in ipairs(self._names) do
    buf[n + 1], buf[n + 2], buf[n + 3], buf[n + 4] = name, ": ", self._values[i], "\r\n"
    n = n + 4
  end
  return buf
end

function Headers:__tostring()
  local out = {}
  for name, value in self:each() do out[#out + 1] = name .. ": " .. value end
  return "Headers{" .. table.concat(out, ", ") .. "}"
end

M.Headers = Headers
function M.is_headers(v) return getmetatable(v) == Headers end

------------------------------------------------------------------ URLs
local DEFAULT_PORT = { http = 80, https = 443, ws = 80, wss = 443 }
M.DEFAULT_PORT = DEFAULT_PORT

--- parse_url(url) -> {scheme, host, port, target, userinfo} or nil, err
--- (absolute http/https/ws/wss URLs; an IPv6 host in brackets).
function M.parse_url(url)
  if type(url) ~= "string" then return nil, "URL must be a string" end
  if url:find("[%z\r\n ]") then return nil, "URL contains a space, CR, LF or NUL" end
  local scheme, rest = url:match("^(%a[%w+.-]*)://(.*)$")
  if not scheme then return nil, "not an absolute URL" end
  scheme = lower(scheme)
  if not DEFAULT_PORT[scheme] then return nil, "unsupported scheme '" .. scheme .. "'" end
  local authority, target = rest:match("^([^/?#]*)(.*)$")
  target = target:gsub("#.*$", "")
  if target == "" then target = "/" elseif target:sub(1, 1) == "?" then target = "/" .. target end
  local userinfo, hostport = authority:match("^(.*)@(.*)$")
  hostport = hostport or authority
  local host, port
  if hostport:sub(1, 1) == "[" then
    host, port = hostport:match("^%[([%x:.]+)%]:?(%d*)$")
  else
    host, port = hostport:match("^([^:]*):?(%d*)$")
  end
  if not host or host == "" then return nil, "URL has no host" end
  if port == "" then port = DEFAULT_PORT[scheme]
  else
    port = tonumber(port)
    if port < 1 or port > 65535 then return nil, "port out of range" end
  end
  return { scheme = scheme, host = lower(host), port = port, target = target,
           userinfo = userinfo }
end

--- percent_decode(s [, plus]) -> s with %XX decoded (and '+' as a space
--- when plus is true, as in a query string)
function M.percent_decode(s, plus)
  if plus then s = s:gsub("+", " ") end
  return (s:gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end))
end

--- percent_encode(s) -> s with every byte outside the unreserved set as %XX
function M.percent_encode(s)
  return (s:gsub("[^%w%-._~]", function(c) return ("%%%02X"):format(c:byte()) end))
end

--- decode_query(q) -> {name = value} (a repeated name: its last value; all
--- of them, in order, in the list at [name] of the second table)
function M.decode_query(q)
  local one, all = {}, {}
  for pair in q:gmatch("[^&;]+") do
    local k, v = pair:match("^([^=]*)=?(.*)$")
    k, v = M.percent_decode(k, true), M.percent_decode(v, true)
    one[k] = v
    local l = all[k]
    if not l then l = {}; all[k] = l end
    l[#l + 1] = v
  end
  return one, all
end

--- split_target(target) -> path (decoded), query string (raw, or nil)
function M.split_target(target)
  local path, query = target:match("^([^?]*)%??(.*)$")
  if not target:find("?", 1, true) then query = nil end
  return M.percent_decode(path), query
end

------------------------------------------------------------------ status
M.REASONS = {
  [100] = "Continue", [101] = "Switching Protocols",
  [200] = "OK", [201] = "Created", [202] = "Accepted", [204] = "No Content",
  [206] = "Partial Content",
  [301] = "Moved Permanently", [302] = "Found", [303] = "See Other",
  [304] = "Not Modified", [307] = "Temporary Redirect", [308] = "Permanent Redirect",
  [400] = "Bad Request", [401] = "Unauthorized", [403] = "Forbidden",
  [404] = "Not Found", [405] = "Method Not Allowed", [408] = "Request Timeout",
  [411] = "Length Required", [413] = "Content Too Large", [414] = "URI Too Long",
  [417] = "Expectation Failed", [426] = "Upgrade Required",
  [429] = "Too Many Requests", [431] = "Request Header Fields Too Large",
  [500] = "Internal Server Error", [501] = "Not Implemented", [502] = "Bad Gateway",
  [503] = "Service Unavailable", [504] = "Gateway Timeout",
  [505] = "HTTP Version Not Supported",
}

return M
