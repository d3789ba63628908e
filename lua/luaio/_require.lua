-- luaio._require: a `require` that may suspend, with Lua 5.4's contract.
--
-- Same lookups as Lua's: package.loaded (the registry's _LOADED), then
-- package.searchers in order, the loader called with the name and the
-- loader data, the same error texts.  Because it is a Lua function, a
-- module's main chunk may suspend (aio.sleep at top level works).  While
-- a module is loading, another task's require of it waits for it and gets
-- the same result or error.  A require of a module from inside its own
-- loading (a cycle) behaves as Lua's: it loads it again.
local M = {}

function M.new(aio)
  local LOADED = debug.getregistry()._LOADED
  local loading = {}          -- name -> { task = t, done = Future }

  -- Returns loader, data; or nil, message, level for the error.
  local function findloader(name)
    local searchers = package.searchers
    if type(searchers) ~= "table" then
      return nil, "'package.searchers' must be a table", 2
    end
    local msg = {}
    for i = 1, math.huge do
      local searcher = searchers[i]
      if searcher == nil then
        return nil, ("module '%s' not found:%s"):format(name, table.concat(msg)), 2
      end
      -- called through pcall so that a searcher's own error has no
      -- position of ours in it, exactly as under Lua's C require
      local ok, loader, data = pcall(searcher, name)
      if not ok then return nil, loader, 0 end
      if type(loader) == "function" then return loader, data end
      if type(loader) == "string" then msg[#msg + 1] = "\n\t" .. loader end
    end
  end

  local function run_loader(name, loader, data)
    local res = loader(name, data)
    if res ~= nil then LOADED[name] = res end
    if LOADED[name] == nil then LOADED[name] = true end
    return LOADED[name], data
  end

  local function finish(entry, name, ok, ...)
    loading[name] = nil
    if ok then entry.done:set_result(...) else entry.done:set_exception((...)) end
    if not ok then
      entry.done:exception()   -- retrieved here: re-raised below
      error((...), 0)
    end
    return ...
  end

  return function(name)
    if type(name) ~= "string" and type(name) ~= "number" then
      error(("bad argument #1 to 'require' (string expected, got %s)"):format(
        name == nil and "no value" or type(name)), 2)
    end
    name = tostring(name)
    local v = LOADED[name]
    if v then return v end
    local me = aio.current_task()
    local entry = loading[name]
    if entry and me and entry.task ~= me then
      -- another task is loading it: wait for the same result or error
      return entry.done:await()
    end
    local loader, data, level = findloader(name)
    if loader == nil then
      if level == 2 then error(data, 2) end
      error(data, 0)
    end
    if me == nil then return run_loader(name, loader, data) end
    entry = { task = me, done = aio.Future() }
    loading[name] = entry
    return finish(entry, name, pcall(run_loader, name, loader, data))
  end
end

return M
