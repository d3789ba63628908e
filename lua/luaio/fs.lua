-- luaio.fs: files on libuv's thread pool, following Lua's io conventions.
--
--   aio.fs.read_file(path) -> data        aio.fs.write_file(path, data)
--   aio.fs.open(path [, mode = "r"]) -> file (a guard: `local f <close> =`)
--     file:read(...)    formats as io: n (bytes; nil at EOF), "a" (the
--                       rest, "" at EOF), "l" / "L" (a line, nil at EOF)
--     file:write(...)   strings and numbers; returns the file
--     file:seek([whence = "cur" [, offset = 0]]) -> position
--     file:lines(...)   iterator, formats as read (default "l")
--     file:flush(), file:close()
--   aio.fs.stat(path) -> {size, type, mode, mtime, ...}, mkdir, rmdir,
--   rename, unlink, scandir(path) -> {{name =, type =}, ...}
--
-- Every call suspends the calling task (the loop never blocks) and fails
-- with aio.OSError (.code "ENOENT", "EACCES", ...).  A cancelled call is
-- abandoned safely: a request that already runs finishes on its own.
local core = require "luaio.core"

local M = {}

local CHUNK = 64 * 1024
local fs = core.fs

local File = {}
File.__index = File
File.__name = "File"

local function checkfile(f, fname)
  if getmetatable(f) ~= File then core.bad_self(f, "File", fname, 3) end
  if f._fd == nil then error(fname .. ": attempt to use a closed file", 3) end
  return f
end

local check_task = core.check_task

--- aio.fs.open(path [, mode]) -> file
function M.open(path, mode)
  check_task("open")
  if type(path) ~= "string" then
    error(("bad argument #1 to 'open' (string expected, got %s)"):format(type(path)), 2)
  end
  mode = mode or "r"
  if type(mode) ~= "string" or not mode:match("^[rwa]%+?b?$") then
    error(("bad argument #2 to 'open' (invalid mode '%s')"):format(tostring(mode)), 2)
  end
  local fd = fs("open", path, mode)
  return setmetatable({ _fd = fd, _pos = 0, _rbuf = "", _append = mode:sub(1, 1) == "a",
    _path = path }, File)
end

-- Reads one more chunk into the buffer; false at EOF.
local function more(f, want)
  local data = fs("read", f._fd, math.max(want or 0, CHUNK), f._pos + #f._rbuf)
  if data == "" then return false end
  f._rbuf = f._rbuf .. data
  return true
end

-- Makes sure the read buffer holds n bytes (or the rest, at EOF).
local function fill(f, n)
  while #f._rbuf < n do
    if not more(f, n - #f._rbuf) then return false end
  end
  return true
end

local function take(f, n)
  local s = f._rbuf:sub(1, n)
  f._rbuf = f._rbuf:sub(n + 1)
  f._pos = f._pos + #s
  return s
end

local function read_line(f, keep)
  local start = 1
  while true do
    local i = f._rbuf:find("\n", start, true)
    if i then
      local line = take(f, i)
      return keep and line or line:sub(1, -2)
    end
    start = #f._rbuf + 1
    if not more(f) then
      if #f._rbuf == 0 then return nil end
      return take(f, #f._rbuf)
    end
  end
end

-- "n": skips whitespace, then takes the longest numeral, as io.read does
-- (at most 200 characters); nil (and nothing consumed past the
-- whitespace) when there is none.
local function read_number(f)
  while true do
    local ws = f._rbuf:match("^%s*")
    if #ws < #f._rbuf then take(f, #ws); break end
    take(f, #ws)
    if not more(f) then return nil end
  end
  fill(f, 200)
  local b = f._rbuf
  local s = b:match("^[%+%-]?0[xX][%x]*%.?[%x]*[pP][%+%-]?%d+")
    or b:match("^[%+%-]?0[xX][%x]*%.?[%x]*")
    or b:match("^[%+%-]?%d*%.?%d*[eE][%+%-]?%d+")
    or b:match("^[%+%-]?%d*%.?%d*")
  local n = s and tonumber(s)
  if n == nil then return nil end
  take(f, #s)
  return n
end

local function read_one(f, fmt)
  if math.type(fmt) == "integer" then
    if fmt <= 0 then
      fill(f, 1)
      return #f._rbuf > 0 and "" or nil
    end
    fill(f, fmt)
    if #f._rbuf == 0 then return nil end
    return take(f, fmt)
  end
  if type(fmt) == "string" then
    fmt = fmt:gsub("^%*", "")
    local c = fmt:sub(1, 1)
    if c == "a" then
      while more(f) do end
      return take(f, #f._rbuf)
    elseif c == "l" then return read_line(f, false)
    elseif c == "L" then return read_line(f, true)
    elseif c == "n" then
      return read_number(f)
    end
  end
  error(("bad argument to 'read' (invalid format '%s')"):format(tostring(fmt)), 3)
end

function File:read(...)
  checkfile(self, "read")
  local n = select("#", ...)
  if n == 0 then return read_one(self, "l") end
  local out = {}
  for i = 1, n do
    out[i] = read_one(self, (select(i, ...)))
    if out[i] == nil then return table.unpack(out, 1, i) end
  end
  return table.unpack(out, 1, n)
end

function File:write(...)
  checkfile(self, "write")
  local parts = {}
  for i = 1, select("#", ...) do
    local v = select(i, ...)
    if type(v) ~= "string" and type(v) ~= "number" then
      error(("bad argument #%d to 'write' (string expected, got %s)"):format(i, type(v)), 2)
    end
    parts[i] = tostring(v)
  end
  local data = table.concat(parts)
  self._rbuf = ""
  local done = 0
  while done < #data do
    local chunk = done == 0 and data or data:sub(done + 1)
    local n = fs("write", self._fd, chunk, self._append and -1 or self._pos)
    done = done + n
    self._pos = self._pos + n
  end
  return self
end

function File:seek(whence, offset)
  checkfile(self, "seek")
  whence = whence or "cur"
  offset = offset or 0
  if math.type(offset) ~= "integer" then
    error("bad argument #2 to 'seek' (integer expected)", 2)
  end
  local base
  if whence == "set" then base = 0
  elseif whence == "cur" then base = self._pos
  elseif whence == "end" then base = fs("fstat", self._fd).size
  else error(("bad argument #1 to 'seek' (invalid option '%s')"):format(tostring(whence)), 2) end
  local pos = base + offset
  if pos < 0 then return nil, "Invalid argument", 22 end
  self._rbuf = ""
  self._pos = pos
  return pos
end

function File:lines(...)
  checkfile(self, "lines")
  local fmts = table.pack(...)
  if fmts.n == 0 then fmts = { "l", n = 1 } end
  return function()
    return self:read(table.unpack(fmts, 1, fmts.n))
  end
end

--- file:fileno() -> its descriptor (for pass_fds, wait_readable)
function File:fileno()
  checkfile(self, "fileno")
  return self._fd
end

function File:flush()
  checkfile(self, "flush")
  return self
end

function File:close()
  if getmetatable(self) ~= File then core.bad_self(self, "File", "close") end
  if self._fd == nil then return end
  local fd = self._fd
  self._fd = nil
  fs("close", fd)
  return true
end

File.__close = function(f)
  if f._fd ~= nil then f:close() end
end

File.__gc = function(f)
  if f._fd ~= nil then core.fs_close_sync(f._fd); f._fd = nil end
end

function File:__tostring()
  return ("file (%s)"):format(self._fd and self._path or "closed")
end

--- aio.fs.read_file(path) -> data
function M.read_file(path)
  check_task("read_file")
  if type(path) ~= "string" then
    error(("bad argument #1 to 'read_file' (string expected, got %s)"):format(type(path)), 2)
  end
  local f <close> = M.open(path, "r")
  return f:read("a")
end

--- aio.fs.write_file(path, data)
function M.write_file(path, data)
  check_task("write_file")
  if type(path) ~= "string" then
    error(("bad argument #1 to 'write_file' (string expected, got %s)"):format(type(path)), 2)
  end
  if type(data) ~= "string" then
    error(("bad argument #2 to 'write_file' (string expected, got %s)"):format(type(data)), 2)
  end
  local f <close> = M.open(path, "w")
  f:write(data)
end

local function pathop(op)
  return function(path, ...)
    check_task(op)
    if type(path) ~= "string" then
      error(("bad argument #1 to '%s' (string expected, got %s)"):format(op, type(path)), 2)
    end
    return fs(op, path, ...)
  end
end

M.stat = pathop("stat")
M.mkdir = pathop("mkdir")
M.rmdir = pathop("rmdir")
M.unlink = pathop("unlink")
M.scandir = pathop("scandir")

function M.rename(from, to)
  check_task("rename")
  if type(from) ~= "string" or type(to) ~= "string" then
    error("bad argument to 'rename' (two paths expected)", 2)
  end
  return fs("rename", from, to)
end

M.File = File

return M
