-- luaio.luv: what aio.Runner{loop = uv} needs to run luaio on luv's
-- libuv loop (luv: the module require "luv" returns), so that luv's
-- handles and luaio's tasks share one loop and one uv_run.
--
-- luv (since 1.x) keeps its loop in the module's field _loop: a userdata
-- whose block is the uv_loop_t, with the metatable "uv_loop.meta".
-- core.new_loop borrows it (never closes it, nor luv's handles).
local M = {}

--- loop_of(uv, level) -> luv's loop userdata; raises for anything else
function M.loop_of(uv, level)
  local l = type(uv) == "table" and rawget(uv, "_loop")
  if type(l) ~= "userdata" or getmetatable(l) ~= debug.getregistry()["uv_loop.meta"] then
    error(("bad option 'loop' to 'Runner' (luv's module expected, got %s)")
      :format(type(uv)), level + 1)
  end
  return l
end

return M
