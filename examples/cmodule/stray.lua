-- stray.lua -- a runtime that ends while a thread of the module still
-- holds it (run with LUAIO_SHUTDOWN_TIMEOUT=0.1): aio.run returns after
-- the shutdown timeout, reporting the hold and the operation left; the
-- thread, when its blocking call returns, is told LUAIO_ERROR by
-- luaio_resolve_threadsafe and frees its job itself.  Needs aio.run: the
-- luaio CLI or stock lua5.4 (not a host's task).
local aio = require "luaio"
local hp = require "hashpool"
local wall = aio.core.wall_time

local t0 = wall()
print(aio.run(function()
  aio.create_task(hp.digest_thread, "x", 10, 1500)  -- blocks 1.5 s
  aio.sleep(0.01)
  return "returned"
end))
print("before the thread was done", wall() - t0 < 1.2, hp.threads())
aio.run(function() while hp.threads() > 0 do aio.sleep(0.01) end end)
print("the thread was told LUAIO_ERROR", hp.threads())
