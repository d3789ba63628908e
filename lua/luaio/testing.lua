-- luaio.testing: busted `it` bodies run as tasks, each on its own loop.
--
--   require("luaio.testing").install()                 -- real clock
--   require("luaio.testing").install{clock = "virtual"}
--   it("times out", function() aio.sleep(3600) end)    -- a task; 1 h in ms
--
-- install() wraps `it` in the calling spec file, so the bodies need no
-- boilerplate.  Each body runs as the main task of a fresh aio.Runner with
-- the given options; when it ends, the loop must have nothing left (no
-- task, handle or timer) or the test fails, then the loop is closed.
-- testing.async(fn [, opts]) wraps one body by hand.
local aio = require "luaio"
local core = require "luaio.core"

-- Runner options, plus check_leftovers
local OPTIONS = { debug = true, clock = true, shutdown_timeout = true,
                  check_leftovers = true }

local M = {}

local function leftovers(loop)
  local s = loop:stats()
  local bad = {}
  for _, k in ipairs { "tasks", "handles", "timers", "requests" } do
    if s[k] ~= 0 then bad[#bad + 1] = k .. "=" .. s[k] end
  end
  return #bad > 0 and table.concat(bad, " ") or nil
end

local function finish(r, check, ok, ...)
  local left = check and leftovers(r:get_loop())
  r:close()
  if not ok then error((...), 0) end
  if left then error("the test left behind: " .. left, 0) end
  return ...
end

--- testing.async(fn [, opts]) -> a function running fn as a task.
--- opts: Runner options, plus check_leftovers (default true).
function M.async(fn, opts)
  if type(fn) ~= "function" then
    error(("bad argument #1 to 'async' (function expected, got %s)"):format(type(fn)), 2)
  end
  if opts ~= nil and type(opts) ~= "table" then
    error(("bad argument #2 to 'async' (table expected, got %s)"):format(type(opts)), 2)
  end
  core.check_options(opts, "async", OPTIONS, 2)
  opts = opts or {}
  local ropts = {}
  for k, v in pairs(opts) do if k ~= "check_leftovers" then ropts[k] = v end end
  local check = opts.check_leftovers ~= false
  return function(...)
    local r = aio.Runner(ropts)
    return finish(r, check, pcall(r.run, r, fn, ...))
  end
end

local function caller_env(level)
  local f = debug.getinfo(level + 1, "f").func
  for i = 1, math.huge do
    local name, value = debug.getupvalue(f, i)
    if name == nil then break end
    if name == "_ENV" then return value end
  end
  return _G
end

--- testing.install([opts]): wraps `it` in the calling file's environment.
function M.install(opts)
  if opts ~= nil and type(opts) ~= "table" then
    error(("bad argument #1 to 'install' (table expected, got %s)"):format(type(opts)), 2)
  end
  core.check_options(opts, "install", OPTIONS, 2)
  local env = caller_env(2)
  local it = env.it
  if type(it) ~= "function" then
    error("luaio.testing.install: no busted `it` in the calling environment", 2)
  end
  env.it = function(name, fn, ...)
    if type(fn) == "function" then fn = M.async(fn, opts) end
    return it(name, fn, ...)
  end
  return M
end

return M
