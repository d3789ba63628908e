-- luaio.introspect: aio.dump_tasks([file]) -- the tree of live tasks of
-- the running loop: who created whom, what each waits on, its cancel
-- requests not yet honoured and for how long, its traceback.
local core = require "luaio.core"

local M = {}

local function lines(s, indent)
  return (tostring(s):gsub("\n", "\n" .. indent))
end

--- aio.dump_tasks([file]) (default io.stderr)
function M.dump_tasks(file)
  file = file or io.stderr
  local ok, write = pcall(function() return file.write end)
  if not ok or type(write) ~= "function" and not (getmetatable(write) or {}).__call then
    error(("bad argument #1 to 'dump_tasks' (file expected, got %s)"):format(type(file)), 2)
  end
  local tasks = core.all_tasks()
  local byid, children, roots = {}, {}, {}
  for _, t in ipairs(tasks) do
    local id, parent = t:_info()
    byid[id] = t
    children[parent] = children[parent] or {}
    table.insert(children[parent], t)
  end
  for _, t in ipairs(tasks) do
    local _, parent = t:_info()
    if byid[parent] == nil then roots[#roots + 1] = t end
  end
  local cur = core.current_task()
  local out = { ("%d live task%s"):format(#tasks, #tasks == 1 and "" or "s") }
  local function show(t, indent)
    local id, _, state, what, _, ncancel, pending = t:_info()
    local line = ("%s%s [%s%s]"):format(indent, t:get_name(), state,
      what and (": " .. what) or "")
    if ncancel > 0 then   -- a cancellation it has not honoured (yet)
      line = line .. (" (cancel requested %d time%s, pending for %.3f s)")
        :format(ncancel, ncancel == 1 and "" or "s", pending or 0)
    end
    if t == cur then line = line .. " (running: dumping)" end
    out[#out + 1] = line
    local stack = t:get_stack()
    if stack then out[#out + 1] = indent .. "  " .. lines(stack, indent .. "  ") end
    for _, c in ipairs(children[id] or {}) do show(c, indent .. "  ") end
  end
  for _, t in ipairs(roots) do show(t, "") end
  file:write(table.concat(out, "\n"), "\n")
  if file.flush then file:flush() end
end

return M
