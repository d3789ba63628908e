-- luaio.traceback: how an error is shown.  aio.format_exception(e [, tb])
-- renders an error as the luaio command prints an uncaught one: its
-- message, its traceback, the errors it was chained to (e.cause, else
-- e.context unless e.suppress_context, printed first, as Python does;
-- a bare CancelledError is not shown), and each sub-error of an
-- ExceptionGroup, numbered ([1], [1.2] for a group inside a group), with
-- where it was raised.
--
-- M.escaping(e) serves aio.run under a plain interpreter: lua.c prints
-- only __tostring of a non-string error, so an error object about to
-- leave aio.run with nothing on the stack to catch it (no pcall or xpcall
-- frame, on the main thread) gets a __tostring that renders it whole.
local core = require "luaio.core"

local M = {}

local MAX_DEPTH = 16   -- chains and nested groups shown at most this deep

local function plain_tostring(e)
  local mt = getmetatable(e)
  local f = type(mt) == "table" and (rawget(mt, "__plain") or mt.__tostring)
  if f then
    local ok, s = pcall(f, e)
    if ok and type(s) == "string" then return s end
  end
  return nil
end

--- The one-line message of any error value (lua.c's wording otherwise).
local function message(e)
  if type(e) == "string" then return e end
  if type(e) == "number" then return tostring(e) end
  return plain_tostring(e)
    or ("(error object is a %s value)"):format(type(e))
end
M.message = message

local function field(e, k)
  if type(e) ~= "table" then return nil end
  return rawget(e, k)
end

local render

-- A CancelledError with neither message nor traceback (outside debug
-- mode, the one a deadline or a TaskGroup caused) says nothing the error
-- it turned into does not: it is kept as a link but not printed.
local function bare_cancel(e)
  return core.is(e, core.CancelledError) and field(e, "message") == nil
    and field(e, "traceback") == nil
end

local function chained(out, e, seen, depth)
  local cause, context = field(e, "cause"), field(e, "context")
  if bare_cancel(cause) then cause = nil end
  if bare_cancel(context) then context = nil end
  if cause ~= nil and not seen[cause] then
    render(out, cause, nil, "", seen, depth + 1)
    out[#out + 1] = "\nThe above error was the direct cause of the following error:\n"
  elseif context ~= nil and not seen[context]
      and not field(e, "suppress_context") then
    render(out, context, nil, "", seen, depth + 1)
    out[#out + 1] = "\nDuring handling of the above error, another error occurred:\n"
  end
end

function render(out, e, tb, label, seen, depth)
  if depth > MAX_DEPTH then
    out[#out + 1] = label .. "... (errors nested too deep)"
    return
  end
  if type(e) == "table" then seen[e] = true end
  chained(out, e, seen, depth)
  out[#out + 1] = label .. message(e)
  if tb == nil then tb = field(e, "traceback") end
  if tb then out[#out + 1] = tostring(tb) end
  if core.is(e, core.BaseExceptionGroup) and type(e.exceptions) == "table" then
    local tbs = field(e, "tracebacks")
    local base = label:match("^%[(.*)%] $")
    for i, sub in ipairs(e.exceptions) do
      local subtb = type(tbs) == "table" and tbs[i] or nil
      local sublabel = base and ("[%s.%d] "):format(base, i) or ("[%d] "):format(i)
      if seen[sub] then out[#out + 1] = sublabel .. message(sub) .. " (shown above)"
      else render(out, sub, subtb or nil, sublabel, seen, depth + 1) end
    end
  end
end

--- aio.format_exception(e [, traceback]) -> string (no final newline);
--- traceback replaces e's own (the CLI passes the failed task's).
function M.format_exception(e, tb)
  if tb ~= nil and type(tb) ~= "string" then
    error(("bad argument #2 to 'format_exception' (string or nil expected, got %s)")
      :format(type(tb)), 2)
  end
  local out = {}
  render(out, e, tb, "", {}, 1)
  return table.concat(out, "\n")
end

-- Is something on this thread's stack going to catch an error raised now?
local function caught()
  local _, main = coroutine.running()
  if not main then return true end
  for level = 2, math.huge do
    local info = debug.getinfo(level, "f")
    if info == nil then return false end
    if info.func == pcall or info.func == xpcall then return true end
  end
end

--- M.escaping(e) -> e, rendered whole by tostring if nothing will catch it.
function M.escaping(e)
  if type(e) ~= "table" or caught() then return e end
  local cls = getmetatable(e)
  if type(cls) ~= "table" or rawget(cls, "__plain") then return e end
  if not core.is(e, core.BaseError) then return e end
  local mt = {}
  for k, v in pairs(cls) do mt[k] = v end
  mt.__super = cls                     -- aio.is(e, its class) still holds
  mt.__plain = cls.__tostring
  mt.__tostring = function(x) return M.format_exception(x) end
  return setmetatable(e, mt)
end

return M
