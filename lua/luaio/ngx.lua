-- luaio.ngx (aio.ngx): the part of OpenResty's `ngx` API that lua-resty
-- libraries touch, on luaio, so that they run unchanged in tasks:
--
--   local aio = require "luaio"
--   aio.ngx.install()                      -- the global ngx, unpack, table.clear
--   local redis = require "resty.redis"    -- (Debian: nginx/redis.lua)
--
-- What is here: ngx.socket.tcp / ngx.socket.connect (luaio.ngx_tcp, with
-- the pools of luaio.ngx_pool), ngx.socket.udp (luaio.ngx_udp), ngx.null,
-- ngx.sleep, ngx.now, ngx.update_time, ngx.time, ngx.log with the level
-- constants, ngx.thread (spawn, wait, kill: tasks), ngx.timer.at / every,
-- ngx.shared (in-process dictionaries), ngx.worker.exiting, ngx.config,
-- and LuaJIT's bit (luaio.ngx_bit).  Nothing else (ngx.re's functions
-- raise; no ngx.var, no request API): only what the libraries that are
-- known to work need (docs/guide-libraries.md).
--
-- ngx.log goes through the running loop's exception handler (stderr by
-- default, or the handler set with loop:set_exception_handler), never to
-- standard output; messages less severe than M.log_level (ngx.ERR, as
-- nginx's error_log) are dropped.
local aio = require "luaio"
local tcp = require "luaio.ngx_tcp"
local udp = require "luaio.ngx_udp"

local M = {}

------------------------------------------------------------------ null
-- ngx.null: a unique value for "no value" in replies (Redis nil bulks).
M.null = setmetatable({}, {
  __name = "ngx.null",
  __tostring = function() return "null" end,
  __newindex = function() error("ngx.null is read-only", 2) end,
})

------------------------------------------------------------------ time
-- The loop's monotonic clock, set to the epoch by os.time() once: exact
-- to the second, its progress to the microsecond.
local base_epoch, base_mono

local function mono()
  local ok, loop = pcall(aio.get_running_loop)
  if ok then return loop:time() end
  return nil
end

local function now()
  local m = mono()
  if m == nil then return os.time() end
  if base_mono == nil then base_epoch, base_mono = os.time(), m end
  return base_epoch + (m - base_mono)
end

--- ngx.now() -> seconds since the epoch, to the millisecond
function M.now() return math.floor(now() * 1000) / 1000 end

--- ngx.update_time(): nothing to do (ngx.now() is never stale here)
function M.update_time() end

--- ngx.time() -> whole seconds since the epoch
function M.time() return math.floor(M.now()) end

--- ngx.sleep(seconds): suspends the running task
function M.sleep(s)
  if type(s) ~= "number" or s < 0 then
    error("bad argument #1 to 'sleep' (attempt to pass a negative or non-number value)", 2)
  end
  aio.sleep(s)
end

------------------------------------------------------------------ log
local LEVELS = { "emerg", "alert", "crit", "error", "warn", "notice", "info", "debug" }
M.STDERR, M.EMERG, M.ALERT, M.CRIT, M.ERR = 0, 1, 2, 3, 4
M.WARN, M.NOTICE, M.INFO, M.DEBUG = 5, 6, 7, 8

--- aio.ngx.log_level: the least severe level ngx.log passes on
M.log_level = M.ERR

local function logstr(v, i)
  if v == M.null then return "null" end
  local t = type(v)
  if t == "string" or t == "number" or t == "nil" or t == "boolean" then
    return tostring(v)
  end
  if t == "table" and getmetatable(v) and getmetatable(v).__tostring then
    return tostring(v)
  end
  error(("bad argument #%d to 'log' (expected table to have a __tostring metamethod)"):format(i + 1), 3)
end

--- ngx.log(level, ...): the arguments joined, to the loop's exception
--- handler as {message = "[level] ...", ngx_log_level = level}
function M.log(level, ...)
  if math.type(level) ~= "integer" or level < 0 or level > 8 then
    error("bad argument #1 to 'log' (bad log level)", 2)
  end
  if level > M.log_level then return end
  local parts = {}
  for i = 1, select("#", ...) do parts[i] = logstr((select(i, ...)), i) end
  local msg = ("[%s] %s"):format(LEVELS[level] or "stderr", table.concat(parts))
  local ok, loop = pcall(aio.get_running_loop)
  if ok then
    loop:call_exception_handler({ message = msg, ngx_log_level = level })
  else
    io.stderr:write(msg, "\n")
  end
end

------------------------------------------------------------------ threads
M.thread = {}

--- ngx.thread.spawn(fn, ...) -> a task running fn(...)
function M.thread.spawn(fn, ...)
  if type(fn) ~= "function" then
    error("bad argument #1 to 'spawn' (function expected, got " .. type(fn) .. ")", 2)
  end
  return aio.create_task(fn, ...)
end

local function outcome(t)
  if t:cancelled() then return false, "killed" end
  local ok, err = pcall(t.exception, t)
  if ok and err ~= nil then return false, err end
  return true, t:result()
end

--- ngx.thread.wait(t1, t2, ...) -> true, results of the first to end
--- | false, its error
function M.thread.wait(...)
  local ts = table.pack(...)
  if ts.n == 0 then error("at least one coroutine should be specified", 2) end
  for i = 1, ts.n do
    if ts[i]:done() then return outcome(ts[i]) end
  end
  aio.wait({ table.unpack(ts, 1, ts.n) }, { return_when = aio.FIRST_COMPLETED })
  for i = 1, ts.n do
    if ts[i]:done() then return outcome(ts[i]) end
  end
end

--- ngx.thread.kill(t) -> true | nil, "already waited or killed"
function M.thread.kill(t)
  if t:done() then return nil, "already waited or killed" end
  t:cancel()
  return true
end

------------------------------------------------------------------ timers
M.timer = {}

local function run_timer(fn, ...)
  local ok, err = aio.pcall(fn, false, ...)
  if not ok then M.log(M.ERR, "lua entry thread aborted: runtime error: ", tostring(err)) end
end

local function check_timer(delay, fn, fname)
  if type(delay) ~= "number" or delay < 0 then
    error(("bad argument #1 to '%s' (bad delay)"):format(fname), 3)
  end
  if type(fn) ~= "function" then
    error(("bad argument #2 to '%s' (function expected, got %s)"):format(fname, type(fn)), 3)
  end
end

--- ngx.timer.at(delay, fn, ...) -> true: fn(premature = false, ...) runs
--- as a task after delay seconds
function M.timer.at(delay, fn, ...)
  check_timer(delay, fn, "at")
  aio.get_running_loop():call_later(delay, aio.create_task, run_timer, fn, ...)
  return true
end

--- ngx.timer.every(delay, fn, ...) -> true: the same, every delay seconds
function M.timer.every(delay, fn, ...)
  check_timer(delay, fn, "every")
  if delay == 0 then error("bad argument #1 to 'every' (bad delay)", 2) end
  local args = table.pack(...)
  local loop = aio.get_running_loop()
  local function tick()
    aio.create_task(run_timer, fn, table.unpack(args, 1, args.n))
    loop:call_later(delay, tick)
  end
  loop:call_later(delay, tick)
  return true
end

------------------------------------------------------------------ shared
-- ngx.shared.NAME: a dictionary in this process (nginx's are shared by
-- its workers; here there is one process).  Expiry by the loop's clock.
local Dict = {}
Dict.__index = Dict

local function clock() return mono() or os.time() end

local function live(d, key)
  local e = d._t[key]
  if e and e.exp and e.exp <= clock() then
    d._t[key] = nil
    return nil
  end
  return e
end

local function checkkey(key, fname)
  if type(key) ~= "string" and type(key) ~= "number" then
    error(("bad argument #1 to '%s' (string expected, got %s)"):format(fname, type(key)), 3)
  end
  return tostring(key)
end

function Dict:get(key)
  local e = live(self, checkkey(key, "get"))
  if e then return e.v, e.flags end
  return nil
end

local function store(d, key, value, exptime, flags)
  if value == nil then
    d._t[key] = nil
  else
    d._t[key] = { v = value, flags = flags,
                  exp = (exptime and exptime > 0) and clock() + exptime or nil }
  end
  return true, nil, false
end

function Dict:set(key, value, exptime, flags)
  return store(self, checkkey(key, "set"), value, exptime, flags)
end
Dict.safe_set = Dict.set

function Dict:add(key, value, exptime, flags)
  key = checkkey(key, "add")
  if live(self, key) then return false, "exists", false end
  return store(self, key, value, exptime, flags)
end
Dict.safe_add = Dict.add

function Dict:replace(key, value, exptime, flags)
  key = checkkey(key, "replace")
  if not live(self, key) then return false, "not found", false end
  return store(self, key, value, exptime, flags)
end

function Dict:delete(key)
  self._t[checkkey(key, "delete")] = nil
end

function Dict:incr(key, value, init, init_ttl)
  key = checkkey(key, "incr")
  local e = live(self, key)
  if e == nil then
    if init == nil then return nil, "not found" end
    store(self, key, init + value, init_ttl)
    return init + value, nil, false
  end
  if type(e.v) ~= "number" then return nil, "not a number" end
  e.v = e.v + value
  return e.v
end

function Dict:ttl(key)
  local e = live(self, checkkey(key, "ttl"))
  if e == nil then return nil, "not found" end
  return e.exp and e.exp - clock() or 0
end

function Dict:expire(key, exptime)
  local e = live(self, checkkey(key, "expire"))
  if e == nil then return nil, "not found" end
  e.exp = (exptime and exptime > 0) and clock() + exptime or nil
  return true
end

function Dict:get_keys(max)
  max = max or 1024
  local keys = {}
  for k in pairs(self._t) do
    if live(self, k) then
      keys[#keys + 1] = k
      if max > 0 and #keys >= max then break end
    end
  end
  return keys
end

function Dict:flush_all() self._t = {} end

M.shared = setmetatable({}, {
  __index = function(t, name)
    local d = setmetatable({ _t = {}, name = name }, Dict)
    rawset(t, name, d)
    return d
  end,
})

------------------------------------------------------------------ the rest
M.socket = { tcp = tcp.tcp, connect = tcp.connect, stream = tcp.tcp, udp = udp.udp }
tcp._ngx = M                  -- (where sslhandshake finds ssl_context)

-- ngx.re: present for the libraries that take its functions when loaded
-- (lua-resty-dns: only its reverse_query and IPv6 helpers call them);
-- nginx's PCRE regular expressions are not here.
local function no_re(name)
  return function()
    error("ngx.re." .. name .. ": regular expressions are not supported by luaio.ngx", 2)
  end
end
M.re = { match = no_re("match"), find = no_re("find"), gmatch = no_re("gmatch"),
         sub = no_re("sub"), gsub = no_re("gsub") }
M.worker = {
  exiting = function() return false end,
  pid = function()
    local f = io.open("/proc/self/stat")
    if not f then return 0 end
    local n = f:read("n")
    f:close()
    return n
  end,
  id = function() return 0 end,
  count = function() return 1 end,
}
M.config = { subsystem = "luaio", ngx_lua_version = 0, debug = false,
             nginx_version = 0, prefix = function() return "" end }
M.OK, M.ERROR, M.AGAIN, M.DONE, M.DECLINED = 0, -1, -2, -4, -5

--- aio.ngx.install(): makes this table the global ngx, and adds the
--- globals lua-resty libraries expect of LuaJIT (unpack, table.clear)
--- when missing.  Returns the table.
function M.install()
  _G.ngx = M
  -- LuaJIT's bit module (lua-resty-dns requires it), unless one is installed
  if package.loaded.bit == nil and package.preload.bit == nil
     and package.searchpath("bit", package.cpath) == nil then
    package.preload.bit = function() return require "luaio.ngx_bit" end
  end
  if _G.unpack == nil then _G.unpack = table.unpack end
  if rawget(table, "clear") == nil then
    rawset(table, "clear", function(t)
      for k in pairs(t) do t[k] = nil end
    end)
  end
  return M
end

--- aio.ngx.close_pools(): closes the running loop's pooled (idle)
--- connections and forgets its pools
M.close_pools = require("luaio.ngx_pool").close_all

--- aio.ngx.pool_count(key) -> idle, total connections of a pool
M.pool_count = require("luaio.ngx_pool").count

return M
